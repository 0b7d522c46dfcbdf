"""How ``predictive`` notices that its forecast has gone wrong, and what it asks for then. Pure functions of the
spec and a ``GuardState`` (kept inside ``PredictiveState``); ``predictive.py`` calls them every tick.

Every rate window (``rate_window_s``) closes with its arrival rate and, when the driver shows the fleet, its mean
requests in flight and how long requests stayed on the replicas. From those:

- **bias** (whole buckets): when the last ``drop_buckets`` closed buckets together saw less than ``drop_ratio``
  of what was forecast (a holiday, traffic an hour late), or the last ``bias_buckets`` ran above the forecast by
  more than ``bias_up`` of it on average (growth, traffic an hour early), the forecast is scaled by actual /
  forecast of those buckets until it is right again. Gaps upward are relative to at least one replica's capacity,
  as the headroom errors are, so 1.5 req/s against 1 at night is not news.
- **surge** (minutes): when even the quietest of the last ``surge_s`` of rate windows was above what the
  forecast provisioned for them, ask for that rate now, and for the coming lead time's forecast scaled by how far
  off it is (at most × ``surge_max``): a ramp that comes early is met before it peaks. A one-minute burst does not
  count.
- **load** (minutes, with ``concurrency_per_replica``): when even the lightest of the last ``surge_s`` windows
  held more requests in flight than the replicas can run at that concurrency, ask for enough replicas.
- **slow** (with ``concurrency_per_replica``): Little's law gives how long requests stay on the replicas,
  W = requests running / completions per second. At the configured mix a replica running up to
  ``concurrency_per_replica`` requests keeps them at most W_ref = concurrency / ``capacity_per_replica_rps``
  (latency grows with the batch). When W > (1 + ``slow_margin``) × W_ref in every window of ``surge_s`` while the
  replicas run no more than that concurrency, requests got longer (a mix of longer outputs, a slower engine) and
  each replica serves fewer per second: the capacity per replica is divided by a slowdown factor that grows by
  W / W_ref. The fleet needs a cold start to follow, so the factor moves at most once per lead time + ``surge_s``;
  it relaxes the same way when busy replicas (at least half the concurrency) keep requests under W_ref, and is
  forgotten after ``slow_hold_s`` without a window to confirm it.
- **late** (with ``watch_latency``): when more than 5 % of the requests that completed over the last 5 minutes
  took longer than the SLO's P95 latency (the drivers count them: ``late_total``), that window's P95 missed. If
  the replicas were not full meanwhile (no more in flight than ``concurrency_per_replica`` each: otherwise it is
  the load guard's case), requests are slow at any batch, e.g. outputs that got longer, which Little's law cannot
  show at a light load: one replica is added on top of what the forecast asks for, at most once per lead time +
  ``surge_s`` and at most ``LATE_EXTRA_MAX``; one is taken off again after ``LATE_DECAY_S`` with at most 1 %
  late (the P99 within the SLO: calm, not merely on time, so that the fleet does not hunt between N and N + 1).
  An additive step, not a lower capacity per replica: at a light load a replica more shortens requests a little,
  it does not serve proportionally more.
- **hold**: never scale in below what the busiest of the last ``hold_s`` of rate windows needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from ebbtide.core.signals import PoolSignals, ReplicaState

if TYPE_CHECKING:
    from ebbtide.core.policies.predictive_spec import PredictiveSpec as GuardSpec

__all__ = [
    "GuardState",
    "Tick",
    "bias",
    "close_window",
    "count_tick",
    "hold_need",
    "load_need",
    "recent",
    "restart_window",
    "slow_factor",
    "surge_rate",
    "update_late",
    "update_slow",
]

T = TypeVar("T")
NO_SAMPLE = -1.0  # a window that says nothing about service time (no completions, or replicas over-full)
LATE_SHARE = 0.05  # more than this share of a window's completions over the SLO latency: its P95 misses
MIN_COMPLETIONS = 100  # fewer completions say nothing about a P95
LATE_WINDOW_S = 300.0  # the late share is judged over this long: a P95 SLO window
LATE_EXTRA_MAX = 1  # replicas the late guard may add on top of the forecast (1: chosen on seeds 100-103)
LATE_DECAY_S = 1800.0  # calm this long: one added replica is taken off
LATE_CALM = 0.01  # at most this share late (P99 within the SLO): calm


@dataclass(frozen=True, slots=True)
class Tick:
    """What a driver shows of the fleet at one tick."""

    outstanding: int  # running on replicas + waiting in the gateway queue
    running: int  # running on ready replicas
    ready: int
    completions_total: int
    late_total: int = 0

    @classmethod
    def of(cls, signals: PoolSignals) -> Tick:
        ready = [r for r in signals.replicas if r.state is ReplicaState.READY]
        running = sum(r.inflight for r in ready)
        return cls(signals.outstanding, running, len(ready), signals.completions_total, signals.late_total)


@dataclass(frozen=True, slots=True)
class GuardState:
    rates: tuple[float, ...] = ()  # the last closed rate windows' arrival rates, oldest first
    loads: tuple[float, ...] = ()  # their mean requests in flight
    service: tuple[float, ...] = ()  # their W / W_ref (NO_SAMPLE: none), when the fleet was shown
    busy: tuple[float, ...] = ()  # their mean requests running per ready replica
    late: tuple[tuple[int, int], ...] = ()  # their completions over the SLO latency, and all their completions
    misses: tuple[tuple[float, float], ...] = ()  # the last closed buckets' (actual, forecast), oldest first
    load_sum: float = 0.0  # this window's sums over its ticks
    running_sum: float = 0.0
    ready_sum: float = 0.0
    ticks: int = 0
    completions_at: int | None = None  # completions_total when this window began
    late_at: int = 0  # late_total when this window began
    slow: float = 1.0  # capacity per replica is divided by this
    slow_at_s: float | None = None  # when ``slow`` last moved or was confirmed
    late_extra: int = 0  # replicas the late guard adds on top of the forecast
    late_at_s: float | None = None  # when it last added or took one off
    calm_since_s: float | None = None  # since when the late share has stayed at most LATE_CALM


def count_tick(g: GuardState, tick: Tick | None) -> GuardState:
    if tick is None:
        return g
    fresh = g.completions_at is None
    return replace(
        g,
        load_sum=g.load_sum + tick.outstanding,
        running_sum=g.running_sum + tick.running,
        ready_sum=g.ready_sum + tick.ready,
        ticks=g.ticks + 1,
        completions_at=tick.completions_total if fresh else g.completions_at,
        late_at=tick.late_total if fresh else g.late_at,
    )


def restart_window(g: GuardState, tick: Tick | None) -> GuardState:
    began = None if tick is None else tick.completions_total
    late_at = g.late_at if tick is None else tick.late_total
    return replace(g, load_sum=0.0, running_sum=0.0, ready_sum=0.0, ticks=0, completions_at=began, late_at=late_at)


def close_window(spec: GuardSpec, g: GuardState, rate: float, span_s: float, tick: Tick | None, n: int) -> GuardState:
    """Record a closed rate window (its ticks' sums, and ``tick`` the one that closes it); keep the last ``n``."""
    g = replace(g, rates=(*g.rates, rate)[-n:])
    if g.ticks and tick is not None and g.completions_at is not None:
        running, ready = g.running_sum / g.ticks, g.ready_sum / g.ticks
        done_rps = (tick.completions_total - g.completions_at) / span_s
        busy = running / ready if ready > 0 else 0.0
        sample = NO_SAMPLE
        if spec.concurrency_per_replica is not None and done_rps > 0 and busy <= spec.concurrency_per_replica:
            w_ref = spec.concurrency_per_replica / spec.capacity_per_replica_rps
            sample = running / done_rps / w_ref
        late = (tick.late_total - g.late_at, tick.completions_total - g.completions_at)
        g = replace(
            g,
            loads=(*g.loads, g.load_sum / g.ticks)[-n:],
            service=(*g.service, sample)[-n:],
            busy=(*g.busy, busy)[-n:],
            late=(*g.late, late)[-n:],
        )
    return restart_window(g, tick)


def slow_factor(spec: GuardSpec, g: GuardState, now_s: float) -> float:
    """The slowdown in force: 1 once ``slow_hold_s`` passed without a window confirming it."""
    if g.slow_at_s is None or now_s - g.slow_at_s > spec.slow_hold_s:
        return 1.0
    return g.slow


def update_slow(spec: GuardSpec, g: GuardState, now_s: float, settle_s: float) -> GuardState:
    """Move the slowdown by the service time of the last ``surge_s`` of windows when they all agree, at most once
    per ``settle_s`` (lead time + surge_s: the fleet needs a cold start to follow a change)."""
    service = recent(spec, g.service, spec.surge_s)
    busy = recent(spec, g.busy, spec.surge_s)
    if spec.concurrency_per_replica is None or not service or min(service) == NO_SAMPLE:
        return g
    factor = slow_factor(spec, g, now_s)
    if g.slow_at_s is not None and now_s - g.slow_at_s < settle_s:
        return g
    if min(service) > 1 + spec.slow_margin:
        return replace(g, slow=min(factor * min(service), spec.slow_max), slow_at_s=now_s)
    if factor > 1 and max(service) < 1 and min(busy) >= 0.5 * spec.concurrency_per_replica:
        return replace(g, slow=max(1.0, factor * max(service)), slow_at_s=now_s)
    if factor > 1 and max(service) <= 1 + spec.slow_margin and min(busy) >= 0.5 * spec.concurrency_per_replica:
        return replace(g, slow_at_s=now_s)  # confirmed: requests stay as long as the factor allows
    return g


def update_late(spec: GuardSpec, g: GuardState, now_s: float, settle_s: float) -> GuardState:
    """Add a replica when the last ``LATE_WINDOW_S`` missed the P95 latency while the replicas were not full (at
    most once per ``settle_s``); take one off after ``LATE_DECAY_S`` calm (and as long since the last change)."""
    if not spec.watch_latency:
        return g
    late = recent(spec, g.late, LATE_WINDOW_S)
    n_late, n_done = sum(n for n, _ in late), sum(d for _, d in late)
    if n_done < MIN_COMPLETIONS:
        return g
    since = math.inf if g.late_at_s is None else now_s - g.late_at_s
    if n_late > LATE_SHARE * n_done:
        g = replace(g, calm_since_s=None)
        limit = spec.concurrency_per_replica
        full = limit is not None and max(recent(spec, g.busy, LATE_WINDOW_S)) > limit
        if full or since < settle_s or g.late_extra >= LATE_EXTRA_MAX:
            return g
        return replace(g, late_extra=g.late_extra + 1, late_at_s=now_s)
    if n_late > LATE_CALM * n_done:
        return replace(g, calm_since_s=None)
    calm_since = now_s if g.calm_since_s is None else g.calm_since_s
    if g.late_extra and now_s - calm_since >= LATE_DECAY_S and since >= LATE_DECAY_S:
        return replace(g, late_extra=g.late_extra - 1, late_at_s=now_s, calm_since_s=calm_since)
    return replace(g, calm_since_s=calm_since)


def bias(spec: GuardSpec, misses: Sequence[tuple[float, float]]) -> float:
    """actual / forecast of the recent closed buckets when they show the forecast wrong, else 1."""
    drop = list(misses[-spec.drop_buckets :]) if spec.drop_buckets else []
    if drop and len(drop) == spec.drop_buckets:
        forecast = sum(f for _, f in drop)
        if forecast > 0 and sum(a for a, _ in drop) < spec.drop_ratio * forecast:
            return sum(a for a, _ in drop) / forecast
    up = list(misses[-spec.bias_buckets :]) if spec.bias_buckets else []
    if up and len(up) == spec.bias_buckets:
        floor = spec.capacity_per_replica_rps
        gap = sum(a - f for a, f in up) / sum(max(f, floor) for _, f in up)
        forecast = sum(f for _, f in up)
        if gap > spec.bias_up and forecast > 0:
            return sum(a for a, _ in up) / forecast
    return 1.0


def recent(spec: GuardSpec, values: Sequence[T], seconds: float) -> Sequence[T]:
    """The values of the rate windows that make up the last ``seconds`` (empty if fewer have closed)."""
    n = math.ceil(seconds / spec.rate_window_s - 1e-9)
    return values[-n:] if n > 0 and len(values) >= n else ()


def surge_rate(spec: GuardSpec, rates: Sequence[float], expected_rps: float) -> float | None:
    """The quietest rate of the last ``surge_s`` if even it was above ``expected_rps``, else None."""
    window = recent(spec, rates, spec.surge_s)
    if not window or min(window) <= expected_rps:
        return None
    return min(window)


def load_need(spec: GuardSpec, loads: Sequence[float]) -> int:
    """Replicas for the lightest in-flight load of the last ``surge_s`` at ``concurrency_per_replica``."""
    if spec.concurrency_per_replica is None:
        return 0
    window = recent(spec, loads, spec.surge_s)
    return math.ceil(min(window) / spec.concurrency_per_replica - 1e-9) if window else 0


def hold_need(spec: GuardSpec, rates: Sequence[float], capacity_rps: float) -> int:
    """Replicas the busiest rate window of the last ``hold_s`` needed (no headroom: it has happened)."""
    window = rates[-max(1, math.ceil(spec.hold_s / spec.rate_window_s - 1e-9)) :] if spec.hold_s else ()
    return math.ceil(max(window) / capacity_rps - 1e-9) if window else 0
