"""The oracle: the cheapest fleet that serves the scenario's *known* arrivals within the SLO.

It replays the measured run's arrivals (the same seed and stream the twin draws), counts them per minute, and
needs ceil(arrivals / (throughput at the SLO × 60 s)) replicas in each minute, within the pool's bounds. Each
replica is requested exactly one cold start (the model's mean: the expected cost of a start timed perfectly)
before the first minute it is needed and stops when its minute of need ends, unless it is needed again within
one cold start (keeping it costs less than restarting it). Billed like the twin's fleet (``core.cost``).

Throughput at the SLO: the largest ``b / latency(b)`` over batch sizes ``b`` whose P95-sized request (P95
prompt and output tokens of the arrivals) still meets the P95 latency and TTFT targets. Queueing delay and the
variance of a minute's arrivals are ignored, so the oracle is a lower bound on cost at the SLO, not a policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ebbtide.config import SloSpec
from ebbtide.core.cost import Price, fleet_cost
from ebbtide.sim.service import ServiceModel
from ebbtide.sim.traffic import Traffic

__all__ = [
    "Oracle",
    "SloThroughput",
    "arrivals_of",
    "daily_costs",
    "needed_replicas",
    "oracle",
    "schedule",
    "slo_throughput",
]

BUCKET_S = 60.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SloThroughput:
    rps: float
    batch: int
    feasible: bool  # False: even one request at a time misses the SLO (then batch 1 is used)


@dataclass(frozen=True, slots=True)
class Oracle:
    cost_usd: float
    replica_hours: float
    cold_starts: int
    throughput: SloThroughput
    cold_start_s: float
    bucket_s: float
    needed: tuple[int, ...]
    requests: int
    daily_cost_usd: tuple[float, ...] = ()  # the cost of each day of the run (the last may be partial)


def arrivals_of(
    traffic: Traffic, start_epoch_s: float, duration_s: float, seed: int
) -> tuple[np.ndarray, ...]:
    """(times since start, prompt tokens, output tokens) exactly as the twin draws them for ``seed``."""
    rng = np.random.default_rng(seed)
    parts = list(traffic.chunks(start_epoch_s, start_epoch_s + duration_s, rng))
    cols = [np.concatenate([np.asarray(p[i]) for p in parts]) if parts else np.empty(0) for i in range(3)]
    keep = cols[0] < duration_s
    return tuple(c[keep] for c in cols)


def slo_throughput(
    service: ServiceModel, slo: SloSpec, prompt: tuple[float, float], output: tuple[float, float]
) -> SloThroughput:
    """``prompt``/``output`` = (mean, P95) tokens: throughput from the mean request, SLO from the P95 one."""
    best: SloThroughput | None = None
    for b in range(1, service.slots + 1):
        ttft_p95 = service.ttft_s(round(prompt[1]), b)
        latency_p95 = ttft_p95 + max(output[1] - 1, 0) * service.tpot_s(b)
        if ttft_p95 > slo.ttft_p95_s or latency_p95 > slo.latency_p95_s:
            continue
        rps = b / service.latency_s(round(prompt[0]), round(output[0]), b)
        if best is None or rps > best.rps:
            best = SloThroughput(rps, b, True)
    if best is None:
        return SloThroughput(1 / service.latency_s(round(prompt[0]), round(output[0]), 1), 1, False)
    return best


def needed_replicas(
    times_s: np.ndarray, duration_s: float, rps: float, lo: int, hi: int, bucket_s: float = BUCKET_S
) -> list[int]:
    n_buckets = math.ceil(duration_s / bucket_s - 1e-9)
    counts = np.bincount((times_s // bucket_s).astype(np.int64), minlength=n_buckets)[:n_buckets]
    need = np.ceil(counts / (rps * bucket_s) - 1e-9).astype(np.int64)
    return np.clip(need, lo, hi).tolist()  # type: ignore[no-any-return]


def schedule(
    needed: list[int], bucket_s: float, cold_start_s: float, initial: int, duration_s: float
) -> tuple[list[tuple[float, float]], int]:
    """Billing intervals (requested, stopped) per replica level and the number of cold starts."""
    intervals: list[tuple[float, float]] = []
    starts = 0
    for level in range(1, max(needed, default=0) + 1):
        runs: list[list[float]] = []
        for i, n in enumerate(needed):
            if n < level:
                continue
            a, b = i * bucket_s, min((i + 1) * bucket_s, duration_s)
            if runs and a - runs[-1][1] <= cold_start_s:
                runs[-1][1] = b
            else:
                runs.append([a, b])
        for a, b in runs:
            warm = a == 0.0 and level <= initial
            if not warm:
                starts += 1
            intervals.append((a if warm else max(0.0, a - cold_start_s), b))
    return intervals, starts


def oracle(
    times_s: np.ndarray,
    duration_s: float,
    throughput: SloThroughput,
    cold_start_s: float,
    bounds: tuple[int, int],
    initial: int,
    price: Price,
) -> Oracle:
    needed = needed_replicas(times_s, duration_s, throughput.rps, bounds[0], bounds[1])
    intervals, starts = schedule(needed, BUCKET_S, cold_start_s, initial, duration_s)
    cost = fleet_cost(intervals, price)
    return Oracle(
        cost.cost_usd,
        cost.replica_hours,
        starts,
        throughput,
        cold_start_s,
        BUCKET_S,
        tuple(needed),
        len(times_s),
        daily_costs(intervals, price, duration_s),
    )


def daily_costs(intervals: list[tuple[float, float]], price: Price, duration_s: float) -> tuple[float, ...]:
    """Each day's share of the billing intervals, billed as the twin's cumulative cost is (per second)."""
    days = math.ceil(duration_s / DAY_S - 1e-9)
    out = []
    for d in range(days):
        lo, hi = d * DAY_S, min((d + 1) * DAY_S, duration_s)
        clipped = [(max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi]
        out.append(fleet_cost(clipped, price).cost_usd)
    return tuple(out)
