"""The dashboard's time series: one sample per pool per second in a bounded ring buffer, also appended to
``<state-dir>/series.jsonl`` so ``ebbtide report`` can redraw a finished run.

Latency and TTFT percentiles come from the gateway's Prometheus histograms (``runtime.metrics``): the sampler
keeps one cumulative bucket snapshot per second and takes ``histogram_quantile`` over the difference across
the last ``window_s`` seconds, so the gateway's request path needs no extra bookkeeping.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from ebbtide.core.signals import ReplicaState

__all__ = ["SERIES_FILE", "Sample", "SeriesSampler", "columns", "histogram_quantile", "read_series"]

SERIES_FILE = "series.jsonl"
Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +inf last


@dataclass(frozen=True, slots=True)
class Sample:
    """One pool at one instant. ``t`` wall seconds (epoch), ``pt`` policy seconds (``--time-scale``)."""

    pool: str
    t: float
    pt: float
    rps: float
    starting: int
    ready: int
    draining: int
    queue: int
    inflight: int
    lat_p50: float | None
    lat_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    cost_usd: float
    usd_per_h: float


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' ``histogram_quantile``: linear inside the bucket holding rank q·total; None when empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, lower_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == lower_count:
                return upper
            return lower + (upper - lower) * (rank - lower_count) / (count - lower_count)
        lower, lower_count = upper, count
    return lower


def _minus(new: Buckets, old: Buckets | None) -> Buckets:
    if old is None or len(old) != len(new):
        return new
    return tuple((le, max(0.0, c - o)) for (le, c), (_, o) in zip(new, old, strict=True))


def histogram_buckets(metric: Any) -> dict[str, Buckets]:
    """Cumulative buckets per ``pool`` label from a ``prometheus_client.Histogram``."""
    found: dict[str, list[tuple[float, float]]] = {}
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_bucket"):
                found.setdefault(s.labels["pool"], []).append((float(s.labels["le"]), float(s.value)))
    return {pool: tuple(sorted(rows)) for pool, rows in found.items()}


def counter_values(metric: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                out[s.labels["pool"]] = out.get(s.labels["pool"], 0.0) + float(s.value)
    return out


class _Replica(Protocol):
    state: ReplicaState
    variant: str
    inflight: int


class SeriesSampler:
    """Usage: ``sampler = SeriesSampler(runtime, state_dir)`` when the gateway starts; ``sampler.sample()`` once
    a second; ``sampler.since(t)`` for the dashboard; ``sampler.close()`` at shutdown. The first sample's rate
    covers everything since construction (a pool that appears later counts from 0)."""

    def __init__(
        self, runtime: Any, state_dir: Path | None, *, keep_s: int = 3600, window_s: int = 15
    ) -> None:
        self.runtime = runtime
        self.samples: deque[Sample] = deque(maxlen=keep_s * max(1, len(runtime.cfg.pools)))
        self._lat: deque[dict[str, Buckets]] = deque(maxlen=window_s + 1)
        self._ttft: deque[dict[str, Buckets]] = deque(maxlen=window_s + 1)
        # The first sample's rate counts from here (the gateway's start), not from the first sample: a burst
        # that lands before the first tick would otherwise be folded into the baseline and never drawn.
        self._last: tuple[float, dict[str, int]] = (runtime.wall.now(), _arrivals(runtime))
        self._file: IO[str] | None = None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._file = (state_dir / SERIES_FILE).open("a", buffering=1)

    def sample(self) -> list[Sample]:
        rt = self.runtime
        now, pnow = rt.wall.now(), rt.policy_clock.now()
        m = rt.metrics
        self._lat.append(histogram_buckets(m.duration))
        self._ttft.append(histogram_buckets(m.ttft))
        costs = counter_values(m.cost)
        arrivals = _arrivals(rt)
        dt = now - self._last[0]
        out = []
        for name, pr in rt.pools.items():
            before = self._last[1].get(name, 0)
            lat = _minus(self._lat[-1].get(name, ()), self._lat[0].get(name))
            ttft = _minus(self._ttft[-1].get(name, ()), self._ttft[0].get(name))
            live: list[_Replica] = pr.fleet.live_replicas()
            by_state = {s: sum(1 for r in live if r.state is s) for s in ReplicaState}
            out.append(Sample(
                pool=name, t=round(now, 3), pt=round(pnow, 3),
                rps=round((arrivals[name] - before) / dt, 3) if dt > 0 else 0.0,
                starting=by_state[ReplicaState.STARTING] + by_state[ReplicaState.REQUESTED],
                ready=by_state[ReplicaState.READY],
                draining=by_state[ReplicaState.DRAINING], queue=pr.fleet.broker.queue_depth,
                inflight=sum(r.inflight for r in live),
                lat_p50=_q(0.5, lat), lat_p95=_q(0.95, lat), ttft_p50=_q(0.5, ttft), ttft_p95=_q(0.95, ttft),
                cost_usd=round(costs.get(name, 0.0), 6), usd_per_h=round(_hourly(pr, live), 4),
            ))
        self._last = (now, arrivals)
        self.samples.extend(out)
        if self._file is not None:
            self._file.write("".join(json.dumps(asdict(s)) + "\n" for s in out))
        return out

    def since(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.t > t]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _arrivals(runtime: Any) -> dict[str, int]:
    return {name: pr.arrivals_total for name, pr in runtime.pools.items()}


def _hourly(pr: Any, live: Iterable[_Replica]) -> float:
    prices = {v.name: v.hourly_usd for v in pr.spec.variants if v.hourly_usd is not None}
    return float(sum(prices.get(r.variant, pr.spec.replica.hourly_usd) for r in live))


def _q(q: float, buckets: Buckets) -> float | None:
    v = histogram_quantile(q, buckets)
    return None if v is None else round(v, 4)


def columns(samples: Sequence[Sample]) -> dict[str, dict[str, list[Any]]]:
    """Per pool, one list per field: the JSON shape the dashboard and the report draw from."""
    pools: dict[str, dict[str, list[Any]]] = {}
    for s in samples:
        cols = pools.setdefault(s.pool, {})
        for key, value in asdict(s).items():
            if key != "pool":
                cols.setdefault(key, []).append(value)
    return pools


def read_series(path: Path) -> list[Sample]:
    """A ``series.jsonl`` written by the sampler; a torn last line (crash mid-write) is skipped."""
    out = []
    with path.open() as fh:
        for line in fh:
            try:
                out.append(Sample(**json.loads(line)))
            except (ValueError, TypeError):
                continue
    return out
