"""``ebbtide simulate`` (the digital twin) and ``ebbtide calibrate`` (measure a live server's service)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ebbtide.config import ConfigError
from ebbtide.sim.options import NO_OPTIONS, TrafficOptions, traffic_options

__all__ = ["register"]


@traffic_options
def simulate(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="ebbtide.yaml (default: the embedded pool)."
    ),
    days: float = typer.Option(1.0, help="Simulated days."),
    seed: int = typer.Option(0, help="Random seed: same seed, same result."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
    out: Path | None = typer.Option(None, help="Write timeline.csv and PNG plots here."),
    traffic_opts: TrafficOptions = NO_OPTIONS,
) -> None:
    """Run a config against a day or a week of modelled traffic with the same core as `ebbtide serve`."""
    from ebbtide.sim.output import summary, write_outputs
    from ebbtide.sim.scenario import build_simulation

    err = Console(stderr=True)
    try:
        inp = traffic_opts.scenario_input(config, days=days, seed=seed)
        with Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("sim", total=1.0)
            sim, zone = build_simulation(inp, progress=lambda f: bar.update(task, completed=f))
            began = time.perf_counter()
            sim.run()
            wall_s = time.perf_counter() - began
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    result = summary(sim, wall_s)
    files = write_outputs(sim, out, zone) if out is not None else []
    if out is not None:
        (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_table(Console(), result, files)


def _print_table(console: Console, r: dict[str, Any], files: list[Path]) -> None:
    table = Table(
        title=f"ebbtide simulate: {r['pool']} · {r['traffic']} · seed {r['seed']}", show_header=False
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("requests / completed / rejected", f"{r['requests']:,} / {r['completed']:,} / {r['rejected']:,}"),
        (
            "cost",
            f"${r['cost_usd']:,.2f}  ({r['replica_hours']:.1f} replica-hours at ${r['hourly_usd']:g}/h)",
        ),
        ("cost per 1k requests", _money(r["cost_per_1k_requests_usd"])),
        ("cost per 1M output tokens", _money(r["cost_per_1m_output_tokens_usd"])),
        ("cold starts / failures", f"{r['cold_starts']} / {r['startup_failures']}"),
        (
            "scale-outs / scale-ins / max replicas",
            f"{r['scale_outs']} / {r['scale_ins']} / {r['max_replicas']}",
        ),
        (
            "latency P50 / P95 / P99",
            " / ".join(_sec(r[k]) for k in ("latency_p50_s", "latency_p95_s", "latency_p99_s")),
        ),
        ("TTFT P50 / P95", f"{_sec(r['ttft_p50_s'])} / {_sec(r['ttft_p95_s'])}"),
        (
            "SLO attainment (5-min windows)",
            "n/a"
            if r["slo_attainment"] is None
            else f"{100 * r['slo_attainment']:.1f}% of {r['slo_windows']}",
        ),
        ("max queue", str(r["max_queue"])),
        ("service model", r["service_model"]),
        ("wall time", f"{r['wall_s']:.2f} s"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    _print_breakdowns(console, r)
    for f in files:
        console.print(f"wrote {f}")


def _print_breakdowns(console: Console, r: dict[str, Any]) -> None:
    """Per pool (cost, requests served, replicas) and per priority class (SLO, what was shed), when there is more
    than one of either."""
    if len(r.get("pools", {})) > 1:
        pools = Table(title="per pool")
        pools.add_column("pool", no_wrap=True)
        for col in ("requests", "cost", "replica-h", "cold", "preempt", "max"):
            pools.add_column(col, justify="right")
        for name, p in r["pools"].items():
            pools.add_row(name, f"{p['requests']:,}", f"${p['cost_usd']:,.2f}", f"{p['replica_hours']:.1f}",
                          str(p["cold_starts"]), str(p["preemptions"]), str(p["max_replicas"]))
        console.print(pools)
    if r.get("classes"):
        classes = Table(title="per priority class")
        for col in ("class", "completed", "rejected", "latency P95", "TTFT P95", "SLO attainment"):
            classes.add_column(col, justify="left" if col == "class" else "right")
        for name, c in r["classes"].items():
            slo = "n/a" if c["slo_attainment"] is None else f"{100 * c['slo_attainment']:.1f}%"
            classes.add_row(name, f"{c['completed']:,}", f"{c['rejected']:,}", _sec(c["latency_p95_s"]),
                            _sec(c["ttft_p95_s"]), slo)
        console.print(classes)


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.4f}"


def _sec(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f} s"


def calibrate(
    url: str | None = typer.Option(
        None, help="Base URL of a running OpenAI-compatible server, e.g. http://127.0.0.1:8081"
    ),
    out: Path = typer.Option(..., help="Where to write the table (JSON)."),
    cold_starts: int = typer.Option(
        0, "--cold-starts", min=0, max=100,
        help="Instead: start the pool's replica N times here and record each start's phases (needs --config).",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="ebbtide.yaml (with --cold-starts)."),
    pool: str | None = typer.Option(None, "--pool", help="Pool to start (default: the first)."),
    max_concurrency: int = typer.Option(4, min=1, max=256, help="Sweep concurrency 1..N."),
    requests_per_level: int = typer.Option(
        8, min=1, help="Streaming requests measured per concurrency level."
    ),
    prompt_tokens: int = typer.Option(128, min=1, help="Approximate prompt length sent."),
    max_tokens: int = typer.Option(64, min=2, help="Output tokens requested per request."),
    model: str = typer.Option("", help="Model name to send (default: the server's first /v1/models id)."),
    timeout_s: float = typer.Option(300.0, min=1, help="Per-request timeout."),
) -> None:
    """Measure TTFT and time per output token at concurrency 1..N; `simulate` loads the table
    (sim.service.kind: table). With --cold-starts N: time N real starts of a pool's replica, phase by phase."""
    import asyncio

    from ebbtide.sim.calibrate import CalibrationError, CalibrationPlan, run_calibration

    if cold_starts:
        _calibrate_starts(config, pool, cold_starts, out)
        return
    if url is None:
        raise typer.BadParameter("give --url (a service sweep) or --cold-starts N with --config")

    plan = CalibrationPlan(
        url, max_concurrency, requests_per_level, prompt_tokens, max_tokens, model, timeout_s
    )
    console = Console(stderr=True)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(table: dict[str, Any]) -> None:  # after every level: an interrupted sweep keeps its levels
        out.write_text(json.dumps(table, indent=2) + "\n")

    try:
        asyncio.run(run_calibration(plan, lambda msg: console.print(msg, highlight=False), save))
    except CalibrationError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"wrote {out}")


def _calibrate_starts(config: Path | None, pool_name: str | None, count: int, out: Path) -> None:
    import asyncio
    import tempfile

    from ebbtide.config import ConfigError, load_config
    from ebbtide.sim.calibrate_starts import record_starts, starts_table

    console = Console(stderr=True)
    if config is None:
        raise typer.BadParameter("--cold-starts needs --config (the pool whose replica is started)")
    try:
        cfg = load_config(config)
        spec = cfg.pool(pool_name) if pool_name else cfg.pools[0]
    except (ConfigError, KeyError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    with tempfile.TemporaryDirectory(prefix="ebbtide-calibrate-") as state:
        try:
            starts = asyncio.run(record_starts(spec, count, Path(state), lambda m: console.print(m, highlight=False)))
        except RuntimeError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    table = starts_table(spec.name, starts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=2) + "\n")
    console.print(f"median phases: {table['median_s']}; total {table['total_median_s']} s -> {out}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("calibrate")(calibrate)
