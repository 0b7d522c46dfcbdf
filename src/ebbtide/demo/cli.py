"""``ebbtide demo``: a compressed business day on real replicas, then the same day in the twin."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["comparison_rows", "demo", "register"]


def _sec(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f} s"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _rel(live: float | None, twin: float | None) -> str:
    if live is None or twin is None or live == 0:
        return "n/a"
    return f"{100 * (twin - live) / live:+.1f}%"


def comparison_rows(live: dict[str, Any], twin: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, live, twin, twin vs live) rows; relative differences where the issue asks for them."""
    return [
        ("requests", f"{live['requests']:,}", f"{twin['requests']:,}", ""),
        ("completed", f"{live['completed']:,}", f"{twin['completed']:,}", ""),
        ("latency P50", _sec(live["latency_p50_s"]), _sec(twin["latency_p50_s"]),
         _rel(live["latency_p50_s"], twin["latency_p50_s"])),
        ("latency P95", _sec(live["latency_p95_s"]), _sec(twin["latency_p95_s"]),
         _rel(live["latency_p95_s"], twin["latency_p95_s"])),
        ("TTFT P50", _sec(live["ttft_p50_s"]), _sec(twin["ttft_p50_s"]),
         _rel(live["ttft_p50_s"], twin["ttft_p50_s"])),
        ("TTFT P95", _sec(live["ttft_p95_s"]), _sec(twin["ttft_p95_s"]),
         _rel(live["ttft_p95_s"], twin["ttft_p95_s"])),
        ("SLO attainment", _pct(live["slo_attainment"]), _pct(twin["slo_attainment"]), ""),
        ("replica-seconds", f"{live['replica_seconds']:.1f}", f"{twin['replica_seconds']:.1f}",
         _rel(live["replica_seconds"], twin["replica_seconds"])),
        ("cold starts", str(live["cold_starts"]), str(twin["cold_starts"]), ""),
        ("scaling decisions (out / in)", f"{live['decisions']} ({live['scale_outs']} / {live['scale_ins']})",
         f"{twin['decisions']} ({twin['scale_outs']} / {twin['scale_ins']})", ""),
        *_engine_speed(live, twin),
    ]


def _engine_speed(live: dict[str, Any], twin: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The engine's own decode ms/token on lone requests during the traffic vs at calibration (what the twin
    was given): the twin assumes the machine kept its calibrated speed, this row shows whether it did."""
    during, calibrated = live.get("engine_ms_per_token_alone_p50"), twin.get("engine_ms_per_token_calibrated")
    if during is None or calibrated is None:
        return []
    return [("engine ms/token, lone requests", f"{during:.1f}", f"{calibrated:.1f}",
             _rel(during, calibrated))]



def demo(
    minutes: float | None = typer.Option(
        None, min=0.5, help="Wall minutes of traffic from 08:30 (ramp, lunch). Default: the whole day."
    ),
    compress: float = typer.Option(
        60.0, min=1.0, max=3600.0, help="Policy seconds per wall second (60: a day in 24 min)."
    ),
    port: int = typer.Option(8080, help="Gateway port on 127.0.0.1."),
    state_dir: Path | None = typer.Option(
        None, help="Where serve keeps its store (default: a new .ebbtide/demo-*)."
    ),
    seed: int = typer.Option(0, help="Seed of the arrivals."),
    rate_scale: float = typer.Option(0.08, min=0.001, help="Fraction of the seed's request rates to send."),
) -> None:
    """Watch a compressed business day scale real replicas (dashboard URL printed), then compare the twin."""
    from ebbtide.demo.plan import DemoPlan
    from ebbtide.demo.run import DemoError, run_demo

    console = Console(highlight=False, soft_wrap=True)
    plan = DemoPlan(minutes=minutes, compress=compress, seed=seed, rate_scale=rate_scale)
    where = state_dir or Path(".ebbtide") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        result = run_demo(plan, port, where, console.print)
    except (DemoError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"live vs twin: {result.plan['window']}")
    for col, justify in (("metric", "left"), ("live", "right"), ("twin", "right"), ("twin vs live", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in comparison_rows(result.live, result.twin):
        table.add_row(*row)

    console.print(table)
    console.print(f"results: {where / 'demo-results.json'}")
    console.print(f"charts: ebbtide report --from {where} --out demo.html")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
