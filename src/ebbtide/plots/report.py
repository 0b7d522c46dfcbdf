"""PNG charts of a run (matplotlib, Agg): one figure per pool with the dashboard's five panels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["plot_pools"]


def _xs(cols: dict[str, list[Any]]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in cols["t"]]


def _vals(values: list[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def plot_pools(payload: dict[str, Any], out_stem: Path) -> list[Path]:
    """Writes ``<out_stem>-<pool>.png`` per pool; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    slo = payload["slo"]
    written = []
    for pool, cols in payload["pools"].items():
        if not cols.get("t"):
            continue
        xs = _xs(cols)
        fig, axes = plt.subplots(5, 1, figsize=(10, 11), sharex=True, constrained_layout=True)
        rate, reps, queue, lat, cost = axes
        rate.plot(xs, _vals(cols["rps"]), color="#2c6fbb", lw=1.2)
        rate.set_ylabel("req/s")
        rate.set_title(f"pool {pool}: request rate")
        ready, starting, draining = (_vals(cols[k]) for k in ("ready", "starting", "draining"))
        reps.stackplot(xs, ready, starting, draining, labels=["ready", "starting", "draining"],
                       colors=["#8fd4a8", "#c9b8f0", "#f3c98b"], step="post")
        reps.set_ylabel("replicas")
        reps.legend(loc="upper left", fontsize=8)
        queue.plot(xs, _vals(cols["queue"]), color="#b00020", lw=1.2, label="queue")
        if any(v is not None for v in cols["inflight"]):
            queue.plot(xs, _vals(cols["inflight"]), color="#6b7385", lw=0.8, label="in flight")
        queue.set_ylabel("requests")
        queue.legend(loc="upper left", fontsize=8)
        lines = (("lat_p50", "#8fb3de", "latency P50"), ("lat_p95", "#2c6fbb", "latency P95"),
                 ("ttft_p95", "#1f8a4c", "TTFT P95"))
        for key, color, label in lines:
            if any(v is not None for v in cols[key]):
                lat.plot(xs, _vals(cols[key]), color=color, lw=1.2, label=label)
        lat.axhline(slo["latency_p95_s"], color="#b00020", ls="--", lw=1, label="SLO latency P95")
        lat.axhline(slo["ttft_p95_s"], color="#e07a8b", ls=":", lw=1, label="SLO TTFT P95")
        lat.set_ylabel("seconds")
        lat.legend(loc="upper left", fontsize=8)
        cost.plot(xs, _vals(cols["cost_usd"]), color="#c77d1a", lw=1.2)
        cost.set_ylabel("cost so far ($)")
        cost.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
        path = out_stem.parent / f"{out_stem.name}-{pool.replace('/', '_')}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
