"""What a run reports: the summary object (``--json``), ``timeline.csv`` and the plots under ``--out DIR``."""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ebbtide.core.cost import unit_costs
from ebbtide.core.fleet import Start
from ebbtide.sim.pool import SimPool
from ebbtide.sim.results import TIMELINE_COLUMNS, Results
from ebbtide.sim.run import Simulation

__all__ = ["summary", "write_outputs", "write_timeline"]


def _r(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or math.isnan(v) else (v if math.isinf(v) else round(v, nd))


def summary(sim: Simulation, wall_s: float | None = None) -> dict[str, Any]:
    """One JSON-able object. Every field except ``wall_s`` is a pure function of config, traffic and seed."""
    res, end, primary = sim.results, sim.opt.duration_s, sim.primary
    cost = sim.cost_so_far(end)
    replica_s = sum(p.ledger.replica_seconds(end) for p in sim.pools)
    units = unit_costs(cost, sim.arrivals, res.output_tokens)
    cold_starts = sum(p.cold_starts for p in sim.pools)
    cold_total_s = sum(p.cold_start_total_s for p in sim.pools)
    queued = sum(len(p.queue) for p in sim.pools)
    out: dict[str, Any] = {
        "pool": sim.pool.name,
        "traffic": sim.traffic.name,
        "service_model": sim.service.label,
        "seed": sim.opt.seed,
        "start": datetime.fromtimestamp(sim.opt.start_epoch_s, ZoneInfo(sim.opt.tz)).isoformat(),
        "tz": sim.opt.tz,
        "duration_s": end,
        "requests": sim.arrivals,
        "completed": res.completed,
        "rejected": res.rejected_total,
        "rejected_by_reason": dict(sorted(res.rejected.items())),
        "in_flight_at_end": sum(p.running() for p in sim.pools) + queued,
        "queued_at_end": queued,
        "cost_usd": round(cost, 2),
        "replica_hours": round(replica_s / 3600.0, 4),
        "hourly_usd": primary.spec.price().effective_hourly_usd,
        "cost_per_1k_requests_usd": _r(units.per_1k_requests_usd),
        "cost_per_1m_output_tokens_usd": _r(units.per_1m_output_tokens_usd),
        "output_tokens": res.output_tokens,
        "cold_starts": cold_starts,
        "cold_start_mean_s": _r(cold_total_s / cold_starts, 1) if cold_starts else None,
        "startup_failures": sum(p.startup_failures for p in sim.pools),
        "preemptions": sum(p.preemptions for p in sim.pools),
        "promotions": sum(p.promotions for p in sim.pools),  # standby replicas woken (not cold starts)
        "fallbacks": sim.fallbacks,
        "scale_outs": sum(1 for m in res.marks if m.kind == "out"),
        "scale_ins": sum(1 for m in res.marks if m.kind == "in"),
        "max_replicas": primary.max_capacity,
        **_latency(res),
        "slo": {
            "latency_p95_s": sim.cfg.slo.latency_p95_s,
            "ttft_p95_s": sim.cfg.slo.ttft_p95_s,
            "window_s": sim.cfg.slo.window_s,
        },
        "max_queue": primary.max_queue,
        "pools": {p.spec.name: _pool(p, end) for p in sim.pools},
        "wall_s": None if wall_s is None else round(wall_s, 3),
    }
    if sim.class_results is not None:
        out["classes"] = {name: _class(r) for name, r in zip(sim.class_names, sim.class_results, strict=True)}
    return out


def _latency(res: Results) -> dict[str, Any]:
    return {
        "latency_p50_s": _r(res.latency.quantile(0.50)),
        "latency_p95_s": _r(res.latency.quantile(0.95)),
        "latency_p99_s": _r(res.latency.quantile(0.99)),
        "ttft_p50_s": _r(res.ttft.quantile(0.50)),
        "ttft_p95_s": _r(res.ttft.quantile(0.95)),
        "slo_attainment": _r(res.slo_attainment),
        "slo_windows": res.windows,
    }


def _pool(p: SimPool, end: float) -> dict[str, Any]:
    return {
        "requests": p.arrivals,
        "cost_usd": round(p.ledger.total_usd(end), 2),
        "replica_hours": round(p.ledger.replica_seconds(end) / 3600.0, 4),
        "cold_starts": p.cold_starts,
        "preemptions": p.preemptions,
        "max_replicas": p.max_capacity,
        "max_queue": p.max_queue,
        "variants": sorted({v for v, _ in p.prices}),
        "spot_replicas_started": sum(1 for _, a in p.actions if isinstance(a, Start) and a.spot),
    }


def _class(res: Results) -> dict[str, Any]:
    return {
        "completed": res.completed,
        "rejected": res.rejected_total,
        "rejected_by_reason": dict(sorted(res.rejected.items())),
        **_latency(res),
    }


def write_timeline(sim: Simulation, path: Path, tz: str) -> None:
    cols = sim.results.timeline
    zone = ZoneInfo(tz)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", *TIMELINE_COLUMNS])
        for k in range(len(cols["minute"])):
            stamp = datetime.fromtimestamp(sim.opt.start_epoch_s + k * 60.0, zone).strftime("%Y-%m-%d %H:%M")
            row = [cols[c][k] for c in TIMELINE_COLUMNS]
            w.writerow([stamp, *(_cell(c, v) for c, v in zip(TIMELINE_COLUMNS, row, strict=True))])


def _cell(column: str, value: float) -> str:
    if math.isnan(value):
        return ""
    if column.endswith("_s"):
        return "inf" if math.isinf(value) else f"{value:.3f}"
    if column == "cost_usd":
        return f"{value:.2f}"
    return str(int(value))


def write_outputs(sim: Simulation, out_dir: Path, tz: str) -> list[Path]:
    from ebbtide.plots.twin import plot_all  # matplotlib only when plots are asked for

    out_dir.mkdir(parents=True, exist_ok=True)
    timeline = out_dir / "timeline.csv"
    write_timeline(sim, timeline, tz)
    return [timeline, *plot_all(sim, out_dir, tz)]
