"""``ebbtide plan compare`` and ``ebbtide plan tune``: typer commands over ``plan/compare.py`` and
``plan/tune.py`` (rich table, PNG plot, JSON). Exit 2 on bad input, with the flag or field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ebbtide.config import ConfigError

__all__ = ["compare_command", "tune_command"]

CONFIG_OPT = typer.Option(..., "--config", "-c", help="ebbtide.yaml whose pool is compared.")
TRAFFIC_OPT = typer.Option(None, "--traffic", help="Named profile: business-hours (default) or constant.")
TRACE_OPT = typer.Option(None, "--trace", help="Replay a request trace CSV instead of a profile.")
WARMUP_OPT = typer.Option(7.0, "--warmup-days", help="Days of history learning policies see first.")
SEED_OPT = typer.Option(0, "--seed", help="Random seed: same seed, same traffic, same results.")


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _scenario(
    config: Path, traffic: str | None, trace: Path | None, days: float, warmup: float, seed: int
) -> Any:
    from ebbtide.plan.runner import load_scenario

    if traffic is not None and trace is not None:
        _fail("--traffic and --trace: choose one traffic source")
    try:
        return load_scenario(config, traffic=traffic, trace=trace, days=days, warmup_days=warmup, seed=seed)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def compare_table(result: dict[str, Any]) -> Table:
    days = result["days"]
    table = Table(
        title=f"ebbtide plan compare: {result['pool']} · {result['traffic']} · {days:g} day(s) from "
        f"{result['start'][:10]} · seed {result['seed']} · warm-up {result['warmup_days']:g} d",
        caption="SLO attainment: share of 5-minute windows with P95 latency and TTFT inside the SLO",
    )
    for col, justify in (
        ("policy", "left"),
        ("$/day", "right"),
        ("SLO attainment", "right"),
        ("cold starts", "right"),
        ("replica-hours", "right"),
        ("max replicas", "right"),
        ("× oracle", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    o = result["oracle"]
    table.add_row(
        "oracle (lower bound)",
        f"${o['cost_per_day_usd']:,.2f}",
        "by construction",
        str(o["cold_starts"]),
        f"{o['replica_hours']:.1f}",
        str(o["max_replicas"]),
        "1.00",
        style="bold",
    )
    for p in result["policies"]:
        ratio = p["ratio_to_oracle"]
        table.add_row(
            p["name"],
            f"${p['cost_per_day_usd']:,.2f}",
            _pct(p["slo_attainment"]),
            str(p["cold_starts"]),
            f"{p['replica_hours']:.1f}",
            str(p["max_replicas"]),
            "n/a" if ratio is None else f"{ratio:.2f}",
        )
    return table


def compare_command(
    config: Path = CONFIG_OPT,
    traffic: str | None = TRAFFIC_OPT,
    trace: Path | None = TRACE_OPT,
    days: float = typer.Option(1.0, "--days", help="Measured days."),
    warmup_days: float = WARMUP_OPT,
    seed: int = SEED_OPT,
    as_json: bool = typer.Option(False, "--json", help='Print {"oracle": {...}, "policies": [...]} only.'),
    out: Path | None = typer.Option(
        None, "--out", help="Write compare.json and compare.png here."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes running policies in parallel."),
) -> None:
    """Run the config's policy, six baselines and the oracle on the same traffic: cost, SLO, × oracle."""
    from ebbtide.plan.compare import compare

    scn = _scenario(config, traffic, trace, days, warmup_days, seed)
    cmp = compare(scn, workers=workers)
    if out is not None:
        from ebbtide.plan.plot import plot_comparison

        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(cmp.result, indent=2) + "\n")
        plot_comparison(cmp, scn.options.start_epoch_s, scn.tz, out / "compare.png")
    if as_json:
        typer.echo(json.dumps(cmp.result))
        return
    console = Console()
    console.print(compare_table(cmp.result))
    o = cmp.result["oracle"]
    console.print(
        f"oracle: {o['throughput_at_slo_rps_per_replica']:g} req/s per replica at the SLO (batch "
        f"{o['batch_at_slo']}), replicas per {o['bucket_s']:g} s, started {o['cold_start_s']:g} s ahead",
        highlight=False,
    )
    if out is not None:
        console.print(f"wrote {out / 'compare.json'} and {out / 'compare.png'}")


def tune_command(
    config: Path = CONFIG_OPT,
    policy: str = typer.Option("predictive", "--policy", help="Policy kind whose parameters are searched."),
    traffic: str | None = TRAFFIC_OPT,
    trace: Path | None = TRACE_OPT,
    days: float = typer.Option(1.0, "--days", help="Measured days per evaluation."),
    warmup_days: float = WARMUP_OPT,
    seed: int = SEED_OPT,
    min_slo: float = typer.Option(0.99, "--min-slo", min=0.0, max=1.0, help="Required SLO attainment."),
    budget: int = typer.Option(10, "--budget", min=2, help="Most twin runs spent on the search."),
    as_json: bool = typer.Option(False, "--json", help="Print the search as JSON only."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes running evaluations in parallel."),
) -> None:
    """Search a policy's parameter for the lowest cost at SLO attainment >= --min-slo; print YAML."""
    from ebbtide.plan.tune import TUNABLE, TuneError, tune

    if policy not in TUNABLE:
        _fail(f"--policy = {policy!r}: must be one of {', '.join(TUNABLE)}")
    scn = _scenario(config, traffic, trace, days, warmup_days, seed)
    try:
        result = tune(scn, policy, min_slo=min_slo, budget=budget, workers=workers)
    except TuneError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result))
        raise typer.Exit(0 if result["best"] is not None else 1)
    console = Console()
    table = Table(title=f"ebbtide plan tune: {policy} · SLO attainment >= {100 * min_slo:g}%")
    for col in (result["parameter"], "$/day", "SLO attainment", "meets"):
        table.add_column(col, justify="right")
    for t in result["trials"]:
        table.add_row(
            f"{t['value']:g}",
            f"${t['cost_per_day_usd']:,.2f}",
            _pct(t["slo_attainment"]),
            "yes" if t["meets"] else "no",
        )
    console.print(table)
    if result["best"] is None:
        console.print(f"no evaluated setting reached {100 * min_slo:g}% SLO attainment", highlight=False)
        raise typer.Exit(1)
    console.print("# paste under the pool:", highlight=False)
    typer.echo(
        yaml.safe_dump({"scaling": {"policies": result["best"]["policies"]}}, sort_keys=False).rstrip()
    )
