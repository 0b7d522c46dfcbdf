"""``ebbtide plan compare`` and ``ebbtide plan tune``: typer commands over ``plan/compare.py`` and
``plan/tune.py`` (rich table, PNG plot, JSON). Exit 2 on bad input, with the flag or field named."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ebbtide.config import ConfigError
from ebbtide.sim.options import NO_OPTIONS, TrafficOptions, traffic_options

__all__ = ["compare_command", "tune_command"]

CONFIG_OPT = typer.Option(..., "--config", "-c", help="ebbtide.yaml whose pool is compared.")
WARMUP_OPT = typer.Option(
    7.0, "--warmup-days", help="Days of history learning policies see first (a trace's first days)."
)
SEED_OPT = typer.Option(0, "--seed", help="Random seed: same seed, same traffic, same results.")
WORKERS_OPT = typer.Option(2, "--workers", min=1, help="Processes running twin runs in parallel.")


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _scenario(config: Path, opts: TrafficOptions, days: float, warmup: float, seed: int) -> Any:
    from ebbtide.plan.runner import scenario_from

    try:
        return scenario_from(opts.scenario_input(config, days=days, seed=seed, warmup_days=warmup))
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))


def _pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f}%"


def _window_line(window: dict[str, Any]) -> str:
    """Which days were learned and which measured, in the trace's own time when there is a trace."""
    trace = window.get("trace")
    span = window["measured"]
    line = f"measured {span[0]} → {span[1]}"
    if window.get("learned"):
        line += f" after learning {window['learned'][0]} → {window['learned'][1]}"
    if trace:
        line += f"; trace {trace['path']}: measured {trace['measured'][0]} → {trace['measured'][1]}"
        if trace.get("learned"):
            line += f", learned {trace['learned'][0]} → {trace['learned'][1]}"
        if trace["first_arrival"]:
            line += f"; arrivals {trace['first_arrival']} … {trace['last_arrival']}"
        if trace["repeats_learned"]:
            line += " (--loop: the measured days repeat learned ones, so this is not out of sample)"
    return line


def compare_table(result: dict[str, Any]) -> Table:
    days = result["days"]
    table = Table(
        title=f"ebbtide plan compare: {result['pool']} · {result['traffic']} · {days:g} day(s) from "
        f"{result['start'][:10]} · seed {result['seed']} · warm-up {result['warmup_days']:g} d",
        caption="SLO attainment: share of 5-minute windows with P95 latency and TTFT inside the SLO",
    )
    for col in ("policy", "$/day", "SLO attainment", "cold starts", "replica-hours", "max replicas", "× oracle"):
        table.add_column(col, justify="left" if col == "policy" else "right")
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


def seeds_table(result: dict[str, Any]) -> Table:
    seeds = result["seeds"]
    table = Table(
        title=f"ebbtide plan compare: {result['pool']} · {result['traffic']} · {result['days']:g} day(s) from "
        f"{result['start'][:10]} · seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}) · warm-up {result['warmup_days']:g} d",
        caption="mean and worst over the seeds; worst day: the highest daily × oracle and the lowest daily SLO "
        "attainment of any seed's day",
    )
    for col in ("policy", "$/day mean", "× oracle mean", "worst (seed)", "SLO mean", "worst (seed)", "worst day"):
        table.add_column(col, justify="left" if col in ("policy", "worst day") else "right")
    table.add_row(
        "oracle (lower bound)", f"${result['oracle']['cost_per_day_usd_mean']:,.2f}", "1.00", "", "", "", "",
        style="bold",
    )
    for p in result["policies"]:
        rw, sw, dr, ds = p["ratio_worst"], p["slo_worst"], p["worst_day_ratio"], p["worst_day_slo"]
        worst_day = []
        if dr:
            worst_day.append(f"{dr['ratio_to_oracle']:.2f}× seed {dr['seed']} {dr['date']}")
        if ds:
            worst_day.append(f"{_pct(ds['slo_attainment'])} seed {ds['seed']} {ds['date']}")
        table.add_row(
            p["name"],
            f"${p['cost_per_day_usd_mean']:,.2f}",
            "n/a" if p["ratio_mean"] is None else f"{p['ratio_mean']:.3f}",
            "n/a" if rw is None else f"{rw['value']:.3f} ({rw['seed']})",
            _pct(p["slo_mean"], 2),
            "n/a" if sw is None else f"{_pct(sw['value'], 2)} ({sw['seed']})",
            "; ".join(worst_day),
        )
    return table


def _write_compare_out(out: Path, result: dict[str, Any], cmp: Any, scn: Any) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.json"]
    written[0].write_text(json.dumps(result, indent=2) + "\n")
    if "per_day" in result:
        from ebbtide.plan.seeds import PER_DAY_COLUMNS

        path = out / "per_day.csv"
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=PER_DAY_COLUMNS)
            writer.writeheader()
            writer.writerows(result["per_day"])
        written.append(path)
    if cmp is not None:
        from ebbtide.plots.compare import plot_comparison

        written.append(plot_comparison(cmp, scn.options.start_epoch_s, scn.tz, out / "compare.png"))
    return written


@traffic_options
def compare_command(
    config: Path = CONFIG_OPT,
    days: float = typer.Option(1.0, "--days", help="Measured days (after the warm-up)."),
    warmup_days: float = WARMUP_OPT,
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0): same seed, same results."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Several seeds, e.g. 0-9: mean, worst and per-day figures instead of one run."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"oracle": {...}, "policies": [...]} only.'),
    out: Path | None = typer.Option(
        None, "--out", help="Write compare.json and compare.png (with --seeds: per_day.csv) here."
    ),
    workers: int = WORKERS_OPT,
    traffic_opts: TrafficOptions = NO_OPTIONS,
) -> None:
    """Run the config's policy, six baselines and the oracle on the same traffic: cost, SLO, × oracle."""
    from ebbtide.plan.compare import compare
    from ebbtide.plan.seeds import SeedsError, compare_seeds, parse_seeds

    if seeds is not None and seed is not None:
        _fail("--seed and --seeds: give one")
    try:
        seed_list = parse_seeds(seeds) if seeds is not None else None
    except SeedsError as exc:
        _fail(str(exc))
    scn = _scenario(config, traffic_opts, days, warmup_days, seed_list[0] if seed_list else seed or 0)
    cmp = None
    if seed_list is not None:
        result = compare_seeds(scn, seed_list, workers=workers)
    else:
        cmp = compare(scn, workers=workers)
        result = cmp.result
    written = _write_compare_out(out, result, cmp, scn) if out is not None else []
    if as_json:
        typer.echo(json.dumps(result))
        return
    console = Console()
    console.print(seeds_table(result) if seed_list is not None else compare_table(result))
    console.print(_window_line(result["window"]), highlight=False)
    o = result["oracle"]
    if cmp is not None:
        console.print(
            f"oracle: {o['throughput_at_slo_rps_per_replica']:g} req/s per replica at the SLO (batch "
            f"{o['batch_at_slo']}), replicas per {o['bucket_s']:g} s, started {o['cold_start_s']:g} s ahead",
            highlight=False,
        )
    for path in written:
        console.print(f"wrote {path}", highlight=False)


@traffic_options
def tune_command(
    config: Path = CONFIG_OPT,
    policy: str = typer.Option("predictive", "--policy", help="Policy kind whose parameters are searched."),
    train_days: float = typer.Option(1.0, "--train-days", "--days", help="Days the search is measured on."),
    test_days: float = typer.Option(
        1.0, "--test-days", help="Days after them the winner is then run on, unseen by the search (0: none)."
    ),
    warmup_days: float = WARMUP_OPT,
    seed: int = SEED_OPT,
    min_slo: float = typer.Option(0.99, "--min-slo", min=0.0, max=1.0, help="Required SLO attainment."),
    budget: int = typer.Option(10, "--budget", min=2, help="Most twin runs spent on the search."),
    as_json: bool = typer.Option(False, "--json", help="Print the search as JSON only."),
    workers: int = WORKERS_OPT,
    traffic_opts: TrafficOptions = NO_OPTIONS,
) -> None:
    """Search a policy's parameter for the lowest cost at SLO attainment >= --min-slo on training days, then
    run the winner on test days it never saw; print both and the YAML to paste."""
    from ebbtide.plan.tune import TUNABLE, TuneError, tune

    if policy not in TUNABLE:
        _fail(f"--policy = {policy!r}: must be one of {', '.join(TUNABLE)}")
    if train_days <= 0 or test_days < 0:
        _fail(f"--train-days = {train_days:g}, --test-days = {test_days:g}: need > 0 and >= 0")
    scn = _scenario(config, traffic_opts, train_days + test_days, warmup_days, seed)
    try:
        result = tune(
            scn, policy, min_slo=min_slo, budget=budget, workers=workers, train_days=train_days, test_days=test_days
        )
    except TuneError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result))
        raise typer.Exit(0 if result["best"] is not None else 1)
    _print_tune(Console(), result, min_slo)
    if result["best"] is None:
        raise typer.Exit(1)
    typer.echo(
        yaml.safe_dump({"scaling": {"policies": result["best"]["policies"]}}, sort_keys=False).rstrip()
    )


def _print_tune(console: Console, result: dict[str, Any], min_slo: float) -> None:
    train = result["train"]
    table = Table(
        title=f"ebbtide plan tune: {result['policy']} · SLO attainment >= {100 * min_slo:g}% · training "
        f"{train['days']:g} day(s)",
        caption=_window_line(train["window"]),
    )
    for col in (result["parameter"], "$/day", "SLO attainment", "meets"):
        table.add_column(col, justify="right")
    for t in result["trials"]:
        meets = "yes" if t["meets"] else "no"
        table.add_row(f"{t['value']:g}", f"${t['cost_per_day_usd']:,.2f}", _pct(t["slo_attainment"]), meets)
    console.print(table)
    best, test = result["best"], result["test"]
    if best is None:
        console.print(f"no evaluated setting reached {100 * min_slo:g}% SLO attainment", highlight=False)
        return
    console.print(
        f"training (in sample): {result['parameter']} = {best['value']:g}: ${best['cost_per_day_usd']:,.2f}/day at "
        f"{_pct(best['slo_attainment'])}",
        highlight=False,
    )
    if test is None:
        console.print("no test days (--test-days 0): the figure above is in sample only", highlight=False)
    else:
        b, u = test["best"], test["untuned"]
        console.print(
            f"test (out of sample, {test['days']:g} day(s), {_window_line(test['window'])}): "
            f"{best['value']:g}: ${b['cost_per_day_usd']:,.2f}/day = {b['ratio_to_oracle']:.3f} × oracle at "
            f"{_pct(b['slo_attainment'])}; untuned {test['untuned_value']:g}: ${u['cost_per_day_usd']:,.2f}/day "
            f"= {u['ratio_to_oracle']:.3f} × oracle at {_pct(u['slo_attainment'])}",
            highlight=False,
        )
    console.print("# paste under the pool:", highlight=False)
