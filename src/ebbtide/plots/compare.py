"""``plan compare --out``: one PNG (matplotlib, Agg) - replicas over time per policy against the oracle's, and
$/day per policy with its SLO attainment."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from ebbtide.plan.compare import Comparison

__all__ = ["plot_comparison"]


def plot_comparison(cmp: Comparison, start_epoch_s: float, tz: str, path: Path) -> Path:
    zone = ZoneInfo(tz)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [3, 2]})
    for name, series in cmp.timelines.items():
        stamps = [datetime.fromtimestamp(start_epoch_s + 60.0 * k, zone) for k in range(len(series))]
        x = mdates.date2num(stamps)  # type: ignore[no-untyped-call]
        style = {"color": "black", "lw": 2.0, "zorder": 5} if name == "oracle" else {"lw": 1.0, "alpha": 0.8}
        top.step(x, series, where="post", label=name, **style)
    top.xaxis.set_major_formatter(mdates.DateFormatter("%a %H:%M", tz=zone))  # type: ignore[no-untyped-call]
    top.set_ylabel("replicas (capacity)")
    top.set_title(f"{cmp.result['pool']}: replicas per minute, {cmp.result['traffic']}")
    top.legend(fontsize=8, ncol=2, loc="upper left")
    top.grid(alpha=0.3)
    rows = cmp.result["policies"]
    names = ["oracle", *(p["name"] for p in rows)]
    costs = [cmp.result["oracle"]["cost_per_day_usd"], *(p["cost_per_day_usd"] for p in rows)]
    slo = [None, *(p["slo_attainment"] for p in rows)]
    y = np.arange(len(names))
    colors = ["black" if s is None else ("tab:green" if s >= 0.99 else "tab:orange") for s in slo]
    bottom.barh(y, costs, color=colors)
    for yi, cost, s in zip(y, costs, slo, strict=True):
        label = f" ${cost:,.0f}/day" + ("" if s is None else f"  SLO {100 * s:.1f}%")
        bottom.text(cost, yi, label, va="center", fontsize=8)
    bottom.set_yticks(y, names, fontsize=8)
    bottom.invert_yaxis()
    bottom.set_xlabel("$/day (green: >= 99% of 5-minute windows in SLO)")
    bottom.set_xlim(0, max(costs) * 1.35 if costs else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
