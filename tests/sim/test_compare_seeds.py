"""``plan compare --seeds``: each seed is exactly the single-seed comparison, the spread is computed from them,
the per-day table adds up to the runs; every traffic source and flag of ``simulate`` reaches ``plan compare`` and
``plan tune`` through one shared option set."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ebbtide.cli import _register_all, app
from ebbtide.plan.compare import compare
from ebbtide.plan.seeds import SeedsError, compare_seeds, parse_seeds, with_seed
from tests.sim.test_compare_fixtures import SMALL_POOL, small_scenario


def _without_wall(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out.pop("wall_s", None)
    out["policies"] = [{k: v for k, v in p.items() if k != "wall_s"} for p in result["policies"]]
    return out


def test_parse_seeds_ranges_lists_and_errors() -> None:
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("3, 1,2-4") == [3, 1, 2, 4]
    for bad in ("x", "5-2", "1-"):
        with pytest.raises(SeedsError, match="--seeds"):
            parse_seeds(bad)


def test_each_seed_is_the_single_seed_comparison_and_the_spread_is_theirs(tmp_path: Path) -> None:
    scn = small_scenario(tmp_path, hours=2.0, warmup_days=1)
    result = compare_seeds(scn, [4, 5], workers=2)
    for seed, per_seed in zip([4, 5], result["per_seed"], strict=True):
        alone = compare(with_seed(scn, seed), workers=1).result
        assert _without_wall(per_seed) == _without_wall(alone)
    for i, row in enumerate(result["policies"]):
        ratios = [r["policies"][i]["ratio_to_oracle"] for r in result["per_seed"]]
        slos = [r["policies"][i]["slo_attainment"] for r in result["per_seed"]]
        assert row["ratio_mean"] == pytest.approx(sum(ratios) / 2, abs=1e-4)
        assert row["ratio_worst"]["value"] == max(ratios) and row["slo_worst"]["value"] == min(slos)
    # Per day: one row per seed x policy x day (2 hours = one partial day), costs adding up to the runs'.
    assert len(result["per_day"]) == 2 * 7
    for r in result["per_seed"]:
        for p in r["policies"]:
            days = [d for d in result["per_day"] if d["seed"] == r["seed"] and d["policy"] == p["name"]]
            assert sum(d["cost_usd"] for d in days) == pytest.approx(p["cost_usd"], abs=0.02)
            assert days[0]["oracle_cost_usd"] == pytest.approx(r["oracle"]["cost_usd"], abs=0.02)


def test_per_day_figures_split_a_two_day_run(tmp_path: Path) -> None:
    scn = small_scenario(tmp_path, hours=48.0, warmup_days=0)
    (run,) = compare_seeds(scn, [1], workers=1)["per_seed"]
    flat = run["policies"][1]  # 6 replicas all day at $10/h
    assert [d["cost_usd"] for d in flat["per_day"]] == [1440.0, 1440.0]
    assert [d["slo_windows"] for d in flat["per_day"]] == [288, 288]
    assert run["oracle"]["daily_cost_usd"][0] + run["oracle"]["daily_cost_usd"][1] == pytest.approx(
        run["oracle"]["cost_usd"], abs=0.02
    )


def _cli(*args: str) -> Any:
    _register_all()
    return CliRunner().invoke(app, list(args))


def test_cli_seeds_json_and_per_day_csv(tmp_path: Path) -> None:
    series = tmp_path / "rates.csv"
    series.write_text("window_start_s,total_rate_req_per_s\n" + "".join(f"{i * 600},{1 + i % 6}\n" for i in range(48)))
    config = tmp_path / "small.yaml"
    config.write_text(SMALL_POOL)
    args = ["plan", "compare", "-c", str(config), "--rate-trace", str(series), "--rate-scale", "0.5"]
    res = _cli(*args, "--warmup-days", "0.25", "--days", "0.05", "--seeds", "1-2", "--json", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["seeds"] == [1, 2] and len(data["policies"]) == 7
    assert data["window"]["trace"]["learned"] == ["0 s", "21600 s"]
    assert data["window"]["trace"]["measured"] == ["21600 s", "25920 s"]
    with (tmp_path / "per_day.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 7
    both = _cli(*args, "--seed", "1", "--seeds", "1-2")
    assert both.exit_code == 2 and "--seed and --seeds" in both.output


def _flags(command: Any) -> set[str]:
    return {opt for p in command.params for opt in p.opts}


def test_simulate_compare_and_tune_share_every_traffic_flag() -> None:
    _register_all()
    group: Any = typer.main.get_command(app)
    plan = group.commands["plan"]
    shared = {
        "--pool",
        "--traffic",
        "--trace",
        "--rate-trace",
        "--rate-scale",
        "--rps",
        "--loop",
        "--time-column",
        "--rate-column",
        "--skip-bad-rows",
        "--start",
        "--tz",
    }
    for command in (group.commands["simulate"], plan.commands["compare"], plan.commands["tune"]):
        assert shared <= _flags(command)


def test_seed_runs_are_the_comparisons_oracle_and_variants_and_spread_of_summarises_them() -> None:
    from ebbtide.plan.runner import load_scenario, run_jobs
    from ebbtide.plan.seeds import seed_runs, spread_of

    config = Path(__file__).resolve().parents[2] / "examples" / "seed-sagemaker.yaml"
    kw: dict[str, Any] = {"days": 1 / 24, "warmup_days": 0, "start": "2028-02-23T08:30"}
    measured = seed_runs(config, [0, 1], **kw)
    assert [sr.seed for sr in measured] == [0, 1]
    single = compare(load_scenario(config, seed=1, **kw), workers=1).result
    assert measured[1].oracle.oracle.cost_usd == pytest.approx(single["oracle"]["cost_usd"], abs=0.005)  # rounded
    assert list(measured[1].variants) == [p["name"] for p in single["policies"]]

    name = "predictive"
    runs = run_jobs([(sr.scenario, sr.variants[name]) for sr in measured], workers=1)
    costs = [sr.oracle.oracle.cost_usd for sr in measured]
    spread = spread_of(runs, costs, days=1 / 24)
    ratios = [r["cost_usd"] / c for r, c in zip(runs, costs, strict=True)]
    assert spread["ratio_mean"] == pytest.approx(sum(ratios) / 2, abs=1e-4)
    assert spread["ratio_worst"] == pytest.approx(max(ratios), abs=1e-4)
    assert spread["slo_worst"] == pytest.approx(min(r["slo_attainment"] for r in runs), abs=1e-4)
    assert spread["usd_per_day_mean"] == pytest.approx(sum(r["cost_usd"] for r in runs) / 2 * 24, abs=0.01)
    single_run = next(p for p in single["policies"] if p["name"] == name)
    assert runs[1]["cost_usd"] == pytest.approx(single_run["cost_usd"])
