"""Modelled replicas: a continuous-batching server whose speed depends on its batch, advanced by events.

Service models give ``ttft_s(prompt_tokens, batch)`` and ``tpot_s(batch)``, precomputed per batch size up to
``slots``: ``SeedAssumed`` (the seed's own claim), ``CalibrationTable`` (measured by ``ebbtide calibrate``)
and ``Roofline`` (a small hardware catalog the plan issue extends).

``SimReplica`` is processor sharing in "virtual tokens": every running sequence advances one token per
``tpot_s(b)`` seconds, so each sequence finishes at a fixed virtual time and only the replica's next finish is
an event. Prefill is a head start of ``ttft / tpot`` virtual tokens, so it slows down with the batch too.

A table with percentiles gives each request its own TTFT and TPOT: lognormal multipliers whose log-sd per batch
size is fitted to the level's p50 and p95 (``ServiceModel.ttft_sigma_by_batch``), drawn from the run's seeded
spread RNG at admission. ``SimReplica.set_slowdown`` stretches a replica's speed while a shared host is
oversubscribed (``sim/host.py``)."""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Protocol

from ebbtide.config.sim import RooflineService, SeedAssumedService, TableService
from ebbtide.core.signals import ReplicaState, ReplicaView

__all__ = [
    "HARDWARE",
    "Hardware",
    "ServiceCurveLike",
    "ServiceModel",
    "SimReplica",
    "from_curve",
    "load_calibration",
    "service_model",
]

EPS_TOKENS = 1e-6
# A running request: (virtual finish, seq, arrival_s, first_token_s, output_tokens, started_s, class index).
Running = tuple[float, int, float, float, int, float, int]


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """Tables per batch size (index = batch size, 1..slots) and the prompt length TTFT figures refer to."""

    label: str
    slots: int
    ttft_by_batch: tuple[float, ...]
    tpot_by_batch: tuple[float, ...]
    prompt_ref_tokens: int
    prefill_fixed_share: float = 0.3
    # Log-sd of each request's TTFT / TPOT multiplier per batch size (median 1); empty = no per-request spread.
    ttft_sigma_by_batch: tuple[float, ...] = ()
    tpot_sigma_by_batch: tuple[float, ...] = ()

    @property
    def has_spread(self) -> bool:
        return any(s > 0 for s in (*self.ttft_sigma_by_batch, *self.tpot_sigma_by_batch))

    def ttft_s(self, prompt_tokens: int, batch: int) -> float:
        scale = (
            self.prefill_fixed_share + (1 - self.prefill_fixed_share) * prompt_tokens / self.prompt_ref_tokens
        )
        return self.ttft_by_batch[batch] * scale

    def tpot_s(self, batch: int) -> float:
        return self.tpot_by_batch[batch]

    def latency_s(self, prompt_tokens: int, output_tokens: int, batch: int) -> float:
        """End-to-end seconds of one request at a steady batch (used for wait estimates and docs)."""
        return self.ttft_s(prompt_tokens, batch) + max(output_tokens - 1, 0) * self.tpot_s(batch)


def seed_assumed(spec: SeedAssumedService, slots: int) -> ServiceModel:
    """Seed 000's assumption: at ``rps_per_replica`` a typical request takes ``typical_latency_s``.

    Little's law gives the nominal batch b_n = rps × latency; TTFT and TPOT are the nominal figures at b_n and
    scale as (0.5 + 0.5 b/b_n): half fixed cost, half proportional to the batch. Throughput then saturates
    near slots / latency(slots). This is what "target 600/min" implies, not physics (see
    docs/seed-wednesday.md)."""
    b_n = max(1.0, spec.rps_per_replica * spec.typical_latency_s)
    tpot_n = (spec.typical_latency_s - spec.ttft_s) / (spec.output_tokens - 1)
    factors = [0.5 + 0.5 * b / b_n for b in range(slots + 1)]
    return ServiceModel(
        f"as assumed by the seed: {spec.rps_per_replica:g} RPS/replica, typical "
        f"{spec.prompt_tokens}/{spec.output_tokens} tokens in {spec.typical_latency_s:g} s",
        slots,
        tuple(spec.ttft_s * f for f in factors),
        tuple(tpot_n * f for f in factors),
        spec.prompt_tokens,
    )


def load_calibration(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read calibration table: {exc}") from exc
    levels = data.get("levels")
    if not isinstance(levels, list) or not levels:
        raise ValueError(f"{path}: `levels` must be a non-empty list")
    for i, lv in enumerate(levels):
        for key in ("concurrency", "ttft_p50_s", "tpot_p50_s"):
            if not isinstance(lv.get(key), int | float) or lv[key] <= 0:
                raise ValueError(f"{path}: levels[{i}].{key} = {lv.get(key)!r}: must be a number > 0")
    return data


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    if len(xs) == 1:
        return ys[0] * x / xs[0] if x > xs[0] else ys[0]
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + w * (ys[i] - ys[i - 1])
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return ys[-1] + max(slope, 0.0) * (x - xs[-1])


def _interp_flat(xs: list[float], ys: list[float], x: float) -> float:
    """Linear between the measured points, held constant outside them (for log-sds, which do not grow)."""
    return _interp(xs, ys, min(max(x, xs[0]), xs[-1]))


def _order_stat_z(q: float, n: int) -> float:
    """Normal quantile that ``calibrate``'s q-quantile of n samples (the ceil(q·n)-th smallest) estimates:
    Blom's plotting position, so the "p95" of 4 samples (their maximum) counts as ~p85, not p95."""
    if n <= 0:
        return NormalDist().inv_cdf(q)
    k = max(1, math.ceil(q * n))
    return NormalDist().inv_cdf((k - 0.375) / (n + 0.25))


def lognormal_fit(p50: float, p95: float | None, requests: int = 0) -> tuple[float, float]:
    """(median, log-sd) of the lognormal through the recorded p50 and p95 of ``requests`` samples; log-sd 0 when
    the table has no spread to fit (p95 missing or not above p50, or one sample)."""
    if p95 is None or p95 <= p50:
        return p50, 0.0
    z50, z95 = _order_stat_z(0.5, requests), _order_stat_z(0.95, requests)
    if z95 <= z50:
        return p50, 0.0
    sigma = math.log(p95 / p50) / (z95 - z50)
    return p50 * math.exp(-z50 * sigma), sigma


def calibration_model(
    spec: TableService, data: dict[str, Any], slots: int | None, source: str
) -> ServiceModel:
    levels = sorted(data["levels"], key=lambda lv: lv["concurrency"])
    xs = [float(lv["concurrency"]) for lv in levels]
    pct = spec.percentile
    n = slots or int(data.get("slots") or xs[-1])
    sizes = range(1, n + 1)
    spread = spec.spread and pct == "p50"
    tables: list[tuple[float, ...]] = []
    sigmas: list[tuple[float, ...]] = []
    for key in ("ttft", "tpot"):
        if spread:
            fits = [lognormal_fit(float(lv[f"{key}_p50_s"]), _num(lv.get(f"{key}_p95_s")),
                                  int(lv.get("requests") or 0)) for lv in levels]
            ys, ss = [f[0] for f in fits], [f[1] for f in fits]
            sigmas.append((ss[0], *(_interp_flat(xs, ss, b) for b in sizes)))
        else:
            ys = [float(lv.get(f"{key}_{pct}_s", lv[f"{key}_p50_s"])) for lv in levels]
        tables.append((ys[0], *(_interp(xs, ys, b) for b in sizes)))
    has_spread = any(s > 0 for ss in sigmas for s in ss)
    return ServiceModel(
        f"calibration table {source} ({pct}{', lognormal spread' if has_spread else ''})",
        n,
        tables[0],
        tables[1],
        int(data.get("prompt_tokens", 800)),
        ttft_sigma_by_batch=sigmas[0] if has_spread else (),
        tpot_sigma_by_batch=sigmas[1] if has_spread else (),
    )


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


@dataclass(frozen=True, slots=True)
class Hardware:
    name: str
    bandwidth_gb_s: float  # vendor datasheets (docs/REFERENCES); plan/hardware.py holds the cited catalog
    fp16_tflops: float  # dense tensor-core FP16, approximate


HARDWARE = {
    h.name: h
    for h in (
        Hardware("a10g", 600.0, 70.0),
        Hardware("l4", 300.0, 121.0),
        Hardware("l40s", 864.0, 362.0),
        Hardware("a100-40gb", 1555.0, 312.0),
        Hardware("a100-80gb", 2039.0, 312.0),
        Hardware("h100", 3350.0, 989.0),
    )
}


def roofline(spec: RooflineService, slots: int) -> ServiceModel:
    """Decode reads all weights plus every sequence's KV cache per step; prefill is compute-bound (2·params
    FLOPs/token)."""
    if spec.hardware not in HARDWARE:
        raise ValueError(f"sim.service.hardware = {spec.hardware!r}: unknown (known: {', '.join(HARDWARE)})")
    hw = HARDWARE[spec.hardware]
    bw = hw.bandwidth_gb_s * 1e9 * spec.gpus * spec.efficiency
    flops = hw.fp16_tflops * 1e12 * spec.gpus * spec.efficiency
    weights = spec.params_b * 1e9 * spec.bytes_per_param
    tpot = [(weights + b * spec.kv_bytes_per_token * spec.context_tokens) / bw for b in range(slots + 1)]
    prefill_per_token = 2 * spec.params_b * 1e9 / flops
    ttft = [800 * prefill_per_token * max(b, 1) ** 0.5 + tpot[b] for b in range(slots + 1)]
    return ServiceModel(
        f"roofline {spec.gpus} x {hw.name}, {spec.params_b:g}B at {spec.bytes_per_param:g} B/param",
        slots,
        tuple(ttft),
        tuple(tpot),
        800,
    )


class ServiceCurveLike(Protocol):
    """What ``plan.roofline.ServiceCurve`` offers: the hook through which the planner's models drive the twin."""

    def ttft_s(self, prompt_tokens: int, batch: int) -> float: ...

    def tpot_s(self, batch: int) -> float: ...


def from_curve(curve: ServiceCurveLike, slots: int, label: str, prompt_ref_tokens: int = 800) -> ServiceModel:
    """Tabulate any service curve per batch size; TTFT's fixed share is the decode step inside it."""
    ttft = [curve.ttft_s(prompt_ref_tokens, max(b, 1)) for b in range(slots + 1)]
    tpot = [curve.tpot_s(max(b, 1)) for b in range(slots + 1)]
    share = min(1.0, tpot[1] / ttft[1]) if ttft[1] > 0 else 1.0
    return ServiceModel(label, slots, tuple(ttft), tuple(tpot), prompt_ref_tokens, share)


def service_model(
    spec: SeedAssumedService | TableService | RooflineService, slots: int, base_dir: Path | None = None
) -> ServiceModel:
    if isinstance(spec, SeedAssumedService):
        return seed_assumed(spec, slots)
    if isinstance(spec, TableService):
        path = Path(spec.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return calibration_model(spec, load_calibration(path), slots, path.name)
    return roofline(spec, slots)


class SimReplica:
    """One replica's lifecycle and its running batch. Times are seconds since the run's start.

    ``view`` is the ``ReplicaView`` routing sees; views are cached per batch size (they are immutable), so
    keeping it current costs a list lookup, not an allocation, on every admit and finish."""

    __slots__ = (
        "_views",
        "base_tpots",
        "batch",
        "heap",
        "last_s",
        "owner",
        "pos",
        "preempted",
        "ready_s",
        "replica_id",
        "requested_s",
        "scheduled_s",
        "service",
        "sigmas",
        "slots",
        "slow",
        "spot",
        "standby",
        "state",
        "stopped_s",
        "tpot",
        "tpots",
        "v",
        "variant",
        "view",
    )

    def __init__(
        self,
        replica_id: str,
        service: ServiceModel,
        requested_s: float,
        spread: random.Random | None = None,
        variant: str = "default",
        spot: bool = False,
        owner: Any = None,
        standby: str | None = None,
    ) -> None:
        self.replica_id = replica_id
        self.variant = variant
        self.spot = spot
        self.standby = standby  # a reserve member's tier (core.standby); None once it serves
        self.owner = owner  # the driver's per-pool state that handles this replica's events
        self.service = service
        self.slots = service.slots
        self.base_tpots = self.tpots = service.tpot_by_batch
        self.slow = 1.0
        # Per-request spread: (TTFT log-sds, TPOT log-sds, a seeded normal draw), or None when deterministic.
        self.sigmas = (
            (service.ttft_sigma_by_batch, service.tpot_sigma_by_batch, spread.gauss)
            if spread is not None and service.has_spread
            else None
        )
        self.requested_s = requested_s
        self.ready_s: float | None = None
        self.stopped_s: float | None = None
        self.v = 0.0
        self.last_s = requested_s
        self.batch = 0
        self.tpot = self.tpots[0]
        self.heap: list[Running] = []
        self.scheduled_s = math.inf
        self.pos = -1  # index in the driver's list of views
        self.preempted = False
        self.set_state(ReplicaState.STARTING)

    def set_state(self, state: ReplicaState, now_s: float | None = None) -> None:
        self.state = state
        if state is ReplicaState.READY and now_s is not None:
            self.ready_s = now_s
        self._views: list[ReplicaView | None] = [None] * (self.slots + 1)
        self.view = self._view()

    def _view(self) -> ReplicaView:
        v = self._views[self.batch]
        if v is None:
            v = ReplicaView(
                self.replica_id, self.state, self.batch, self.slots, self.requested_s, self.ready_s, self.variant,
                self.spot, self.standby,
            )
            self._views[self.batch] = v
        return v

    def start_request(
        self, now_s: float, seq: int, arrival_s: float, prompt_tokens: int, output_tokens: int, cls: int = 0
    ) -> float:
        """Start a request now; returns its TTFT from now (prefill at the new batch size)."""
        if self.batch:
            self.v += (now_s - self.last_s) / self.tpot
        self.last_s = now_s
        self.batch += 1
        self.tpot = tpot = self.tpots[self.batch]
        ttft = self.service.ttft_s(prompt_tokens, self.batch) * self.slow
        work = output_tokens - 1.0
        if self.sigmas is not None:  # this request's own speed: TTFT and TPOT multipliers, median 1
            s_ttft, s_tpot, gauss = self.sigmas
            ttft *= math.exp(s_ttft[self.batch] * gauss(0.0, 1.0))
            work *= math.exp(s_tpot[self.batch] * gauss(0.0, 1.0))
        heapq.heappush(
            self.heap, (self.v + ttft / tpot + work, seq, arrival_s, now_s + ttft, output_tokens, now_s, cls)
        )
        self.view = self._view()
        return ttft

    def pop_due(self, now_s: float, force: bool) -> list[Running]:
        """Finish every sequence whose virtual finish has been reached (``force``: at least the first one)."""
        if self.batch:
            self.v += (now_s - self.last_s) / self.tpot
        self.last_s = now_s
        heap, limit = self.heap, self.v + EPS_TOKENS
        done: list[Running] = []
        while heap and (heap[0][0] <= limit or (force and not done)):
            done.append(heapq.heappop(heap))
        if done:
            self.batch -= len(done)
            self.tpot = self.tpots[self.batch]
            self.view = self._view()
        return done

    def set_slowdown(self, now_s: float, factor: float) -> None:
        """From now on prefill and decode take ``factor`` × their modelled time (a shared, oversubscribed host);
        progress so far is kept. The caller reschedules the next finish if it moved earlier."""
        if self.batch:
            self.v += (now_s - self.last_s) / self.tpot
        self.last_s = now_s
        self.slow = factor
        self.tpots = self.base_tpots if factor == 1.0 else tuple(t * factor for t in self.base_tpots)
        self.tpot = self.tpots[self.batch]

    def next_finish_s(self) -> float:
        heap = self.heap
        if not heap:
            return math.inf
        ahead = heap[0][0] - self.v
        return self.last_s + ahead * self.tpot if ahead > 0 else self.last_s

    def abort_all(self) -> list[Running]:
        done, self.heap, self.batch = self.heap, [], 0
        self.view = self._view()
        return done
