"""PNG plots of a run (matplotlib, Agg): RPS and replicas with decision marks; P95 vs SLO; cumulative cost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from ebbtide.sim.run import Simulation

__all__ = ["plot_all"]

MARK_COLORS = {"out": "tab:red", "in": "tab:green", "bounds": "tab:purple"}


def _times(sim: Simulation, tz: str) -> np.ndarray:
    zone = ZoneInfo(tz)
    n = len(sim.results.timeline["minute"])
    stamps = [datetime.fromtimestamp(sim.opt.start_epoch_s + 60.0 * k, zone) for k in range(n)]
    out: np.ndarray = mdates.date2num(stamps)  # type: ignore[no-untyped-call]
    return out


def _marks(ax: Axes, sim: Simulation, tz: str) -> None:
    zone = ZoneInfo(tz)
    for m in sim.results.marks:
        at = float(mdates.date2num(datetime.fromtimestamp(sim.opt.start_epoch_s + m.t_s, zone)))  # type: ignore[no-untyped-call]
        ax.axvline(at, color=MARK_COLORS[m.kind], alpha=0.35, lw=0.8, ls="--" if m.kind == "bounds" else "-")


def _format(ax: Axes, tz: str, days: float) -> None:
    fmt = "%H:%M" if days <= 1.01 else "%a %H:%M"
    if days <= 1.01:
        ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3), tz=ZoneInfo(tz)))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=ZoneInfo(tz)))  # type: ignore[no-untyped-call]
    ax.grid(alpha=0.3)


def plot_all(sim: Simulation, out_dir: Path, tz: str) -> list[Path]:
    tl, x = sim.results.timeline, _times(sim, tz)
    days = sim.opt.duration_s / 86400
    paths = [out_dir / "rps_replicas.png", out_dir / "p95.png", out_dir / "cost.png"]

    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.plot(
        x, np.asarray(tl["arrivals"]) / 60.0, color="tab:blue", lw=0.7, label="requests/s (per-minute mean)"
    )
    ax.set_ylabel("requests/s")
    ax2 = ax.twinx()
    ax2.step(x, tl["ready"], where="post", color="black", lw=1.4, label="ready replicas")
    ax2.step(x, tl["capacity"], where="post", color="tab:orange", lw=1.0, ls="--", label="desired (capacity)")
    ax2.set_ylabel("replicas")
    ax2.set_ylim(0, max(max(tl["capacity"], default=1), max(tl["ready"], default=1)) + 1)
    _marks(ax, sim, tz)
    _format(ax, tz, days)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [str(ln.get_label()) for ln in lines], loc="upper left", fontsize=8)
    ax.set_title(
        f"{sim.pool.name}: traffic and replicas (red = scale-out, green = scale-in, purple = bounds)"
    )
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4))
    lat = np.nan_to_num(np.asarray(tl["p95_latency_s"]), nan=np.nan, posinf=np.nan)
    ttft = np.nan_to_num(np.asarray(tl["p95_ttft_s"]), nan=np.nan, posinf=np.nan)
    ax.plot(x, lat, lw=0.8, label="P95 latency (per minute)")
    ax.plot(x, ttft, lw=0.8, label="P95 TTFT (per minute)")
    ax.axhline(sim.cfg.slo.latency_p95_s, color="tab:red", ls="--", label="SLO latency P95")
    ax.axhline(sim.cfg.slo.ttft_p95_s, color="tab:orange", ls=":", label="SLO TTFT P95")
    ax.set_yscale("log")
    ax.set_ylabel("seconds")
    _marks(ax, sim, tz)
    _format(ax, tz, days)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 3.5))
    ax.plot(x, tl["cost_usd"], color="tab:green")
    ax.set_ylabel("cumulative cost, $")
    _format(ax, tz, days)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
