"""A finished run as the dashboard's payload: a live state dir (``series.jsonl`` + ``ebbtide.db``) or a
``simulate --out`` dir (``timeline.csv`` + ``summary.json``). Same shape as ``/dashboard/api/series``, so the
report draws with the dashboard's own script."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ebbtide.config import SloSpec
from ebbtide.core.explain import explain
from ebbtide.dashboard.series import SERIES_FILE, Sample, columns, read_series
from ebbtide.serve.control.store import Store

__all__ = ["ReportError", "load_run"]


class ReportError(Exception):
    """Neither a state dir with samples nor a simulate output; the message says what is missing."""


def load_run(path: Path) -> dict[str, Any]:
    if (path / "timeline.csv").is_file():
        return _sim_run(path)
    if (path / SERIES_FILE).is_file():
        return _live_run(path)
    raise ReportError(
        f"{path}: no {SERIES_FILE} (a serve state dir with the dashboard sampler) and no timeline.csv "
        f"(an `ebbtide simulate --out` dir)"
    )


def _slo(path: Path) -> dict[str, float]:
    slo = SloSpec.model_validate({})
    demo = path / "demo.yaml"
    if demo.is_file():
        raw = yaml.safe_load(demo.read_text()) or {}
        slo = SloSpec.model_validate(raw.get("slo") or {})
    return {"latency_p95_s": slo.latency_p95_s, "ttft_p95_s": slo.ttft_p95_s, "window_s": slo.window_s}


def _policy_to_wall(samples: list[Sample]) -> tuple[float, float, float]:
    """(t0, pt0, scale) such that wall = t0 + (policy - pt0) / scale, fitted on the first and last sample."""
    if len(samples) < 2 or samples[-1].t <= samples[0].t:
        return (samples[0].t, samples[0].pt, 1.0) if samples else (0.0, 0.0, 1.0)
    first, last = samples[0], samples[-1]
    scale = (last.pt - first.pt) / (last.t - first.t)
    return first.t, first.pt, scale if scale > 0 else 1.0


def _live_run(path: Path) -> dict[str, Any]:
    samples = read_series(path / SERIES_FILE)
    decisions: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    t0, pt0, scale = _policy_to_wall(samples)
    if (path / "ebbtide.db").is_file():
        store = Store(path / "ebbtide.db")
        try:
            decisions = [
                {"at": t0 + (d["at"] - pt0) / scale, "policy_at": d["at"], "pool": d["pool"],
                 "direction": d["direction"], "text": explain(d)}
                for d in store.decisions(limit=100_000) if d["direction"] != "none"
            ]
            events = [{k: e[k] for k in ("at", "pool", "replica_id", "kind", "detail")}
                      for e in store.events(limit=100_000)]
        finally:
            store.close()
    return {
        "live": False, "title": f"ebbtide report: {path}", "time_scale": round(scale, 3),
        "slo": _slo(path), "pools": columns(samples), "decisions": decisions, "events": events,
    }


def _num(text: str) -> float | None:
    if text == "":
        return None
    v = float(text)
    return None if math.isnan(v) or math.isinf(v) else v


def _sim_run(path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if (path / "summary.json").is_file():
        summary = json.loads((path / "summary.json").read_text())
    start = datetime.fromisoformat(summary["start"]).timestamp() if summary.get("start") else 0.0
    pool = str(summary.get("pool", "simulated"))
    cols: dict[str, list[Any]] = {k: [] for k in ("t", "pt", "rps", "starting", "ready", "draining", "queue",
                                                   "inflight", "lat_p50", "lat_p95", "ttft_p50", "ttft_p95",
                                                   "cost_usd", "usd_per_h")}
    prev_cost = 0.0
    with (path / "timeline.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            t = start + 60.0 * float(row["minute"])
            cost = _num(row["cost_usd"]) or 0.0
            values = {"t": t, "pt": t, "rps": float(row["arrivals"]) / 60.0, "starting": int(row["starting"]),
                      "ready": int(row["ready"]), "draining": int(row["draining"]),
                      "queue": int(row["queue"]),
                      "inflight": None, "lat_p50": None, "lat_p95": _num(row["p95_latency_s"]),
                      "ttft_p50": None, "ttft_p95": _num(row["p95_ttft_s"]), "cost_usd": cost,
                      "usd_per_h": (cost - prev_cost) * 60.0}
            prev_cost = cost
            for k, v in values.items():
                cols[k].append(v)
    slo = summary.get("slo") or _slo(path)
    return {
        "live": False, "title": f"ebbtide report: simulated {pool} ({summary.get('traffic', 'traffic')})",
        "time_scale": 1, "slo": slo, "pools": {pool: cols}, "decisions": [], "events": [],
    }
