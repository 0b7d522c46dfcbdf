"""The live half of the demo: the figures of a finished run, from the load client's outcomes (latency, TTFT,
SLO attainment) and serve's store (replica-seconds, cold starts, decisions), over the traffic window only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ebbtide.loadtest.report import Outcome, percentiles

__all__ = ["engine_speed_alone", "live_summary", "replica_seconds", "slo_attainment"]


def replica_seconds(replicas: Sequence[dict[str, Any]], start_s: float, end_s: float) -> float:
    """Replica time (requested → stopped, as billed) overlapping [start_s, end_s], wall seconds."""
    total = 0.0
    for r in replicas:
        lo = max(start_s, float(r["requested_at"]))
        hi = min(end_s, float(r["stopped_at"]) if r["stopped_at"] is not None else end_s)
        total += max(0.0, hi - lo)
    return total


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def slo_attainment(
    outcomes: Sequence[Outcome], window_s: float, latency_s: float, ttft_s: float
) -> float | None:
    """Share of windows (by arrival) whose P95 latency and TTFT meet the SLO; failures count as misses."""
    windows: dict[int, list[Outcome]] = {}
    for o in outcomes:
        windows.setdefault(int(o.scheduled_s // window_s), []).append(o)
    if not windows:
        return None
    ok = 0
    for items in windows.values():
        lat = [o.latency_s if o.code == "200" and o.latency_s is not None else math.inf for o in items]
        ttft = [o.ttft_s if o.code == "200" and o.ttft_s is not None else math.inf for o in items]
        ok += int(_p95(lat) <= latency_s and _p95(ttft) <= ttft_s)
    return ok / len(windows)


def live_summary(
    outcomes: Sequence[Outcome], replicas: Sequence[dict[str, Any]], decisions: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]], *, wall_start_s: float, wall_end_s: float, policy_start_s: float,
    policy_end_s: float, slo: dict[str, float],
) -> dict[str, Any]:
    ok = [o for o in outcomes if o.code == "200"]
    lat = percentiles([o.latency_s for o in ok if o.latency_s is not None])
    ttft = percentiles([o.ttft_s for o in ok if o.ttft_s is not None])
    changes = [d for d in decisions
               if d["direction"] != "none" and policy_start_s <= d["at"] < policy_end_s]
    ready = [e for e in events if e["kind"] == "ready" and wall_start_s <= e["at"] < wall_end_s]
    return {
        "requests": len(outcomes),
        "completed": len(ok),
        "failed": len(outcomes) - len(ok),
        "latency_p50_s": lat["p50"], "latency_p95_s": lat["p95"],
        "ttft_p50_s": ttft["p50"], "ttft_p95_s": ttft["p95"],
        "slo_attainment": slo_attainment(outcomes, slo["window_s"], slo["latency_p95_s"], slo["ttft_p95_s"]),
        "replica_seconds": replica_seconds(replicas, wall_start_s, wall_end_s),
        "cold_starts": len(ready),
        "decisions": len(changes),
        "scale_outs": sum(1 for d in changes if d["direction"] == "out"),
        "scale_ins": sum(1 for d in changes if d["direction"] == "in"),
        "engine_ms_per_token_alone_p50": engine_speed_alone(ok),
    }


def engine_speed_alone(outcomes: Sequence[Outcome]) -> float | None:
    """Median engine-reported decode ms per token of the requests that overlapped no other one: the engine's
    speed during the traffic in the state the calibration's concurrency-1 level measures it."""
    spans = sorted((o.scheduled_s + o.lateness_s, o.scheduled_s + o.lateness_s + o.latency_s, o.engine_ms_per_token)
                   for o in outcomes if o.latency_s is not None)
    alone: list[float] = []
    busy_until = -math.inf
    for i, (start, end, ms) in enumerate(spans):
        next_start = spans[i + 1][0] if i + 1 < len(spans) else math.inf
        if ms is not None and busy_until <= start and end <= next_start:
            alone.append(ms)
        busy_until = max(busy_until, end)
    return percentiles(alone)["p50"] if alone else None
