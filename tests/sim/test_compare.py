"""``plan compare``: JSON shape and CLI, determinism across worker counts, warm-up replay equal to simulating
the warm-up days, and predictive against reactive target tracking on a sharp ramp."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ebbtide.cli import _register_all, app
from ebbtide.config import build_controller
from ebbtide.core.policies.predictive import PredictivePolicy
from ebbtide.plan.baselines import predictive_spec, with_policies
from ebbtide.plan.compare import POLICY_KEYS, compare
from ebbtide.plan.runner import DAY_S, WARMUP_SEED_OFFSET, Variant, run_variants, warm_state
from ebbtide.sim.run import RunOptions, Simulation
from tests.sim.test_compare_fixtures import SMALL_POOL, small_scenario

BASELINES = ["flat at peak", "sagemaker (seed 000)", "hpa queue depth 30", "knative kpa", "ray serve", "predictive"]


def test_compare_result_shape_and_names(tmp_path: Path) -> None:
    result = compare(small_scenario(tmp_path, hours=1.0, warmup_days=1), workers=1).result
    json.dumps(result)  # plain JSON
    assert {"cost_usd", "cost_per_day_usd", "replica_hours", "cold_starts", "throughput_at_slo_rps_per_replica"} <= set(
        result["oracle"]
    )
    names = [p["name"] for p in result["policies"]]
    assert names == ["yours (small.yaml)", *BASELINES]
    for p in result["policies"]:
        assert set(p) == set(POLICY_KEYS)
        assert p["ratio_to_oracle"] == pytest.approx(p["cost_usd"] / result["oracle"]["cost_usd"], abs=1e-4)
        assert 0.0 <= p["slo_attainment"] <= 1.0
    flat = result["policies"][1]
    assert flat["bounds"] == [6, 6] and flat["cost_usd"] == pytest.approx(6 * 10.0 * 1.0)  # 6 replicas, 1 h


def test_results_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    scn = small_scenario(tmp_path, hours=1.0, warmup_days=1)
    one = compare(scn, workers=1).result
    two = compare(scn, workers=2).result
    for r in (one, two):
        r.pop("wall_s")
        for p in r["policies"]:
            p.pop("wall_s")
    assert one == two


def test_warmup_replay_leaves_predictive_where_simulating_the_warmup_days_would(tmp_path: Path) -> None:
    """Arrivals do not depend on the fleet, so replaying them to the policy equals running the twin: the same
    profile, errors, counters, recent rates and buckets. What the replay cannot know is what the fleet showed
    (requests in flight, time in service): those recent windows start empty in a replayed state."""
    scn = small_scenario(tmp_path, hours=1.0, warmup_days=0.25)
    pool = with_policies(scn.pool, [predictive_spec(2.0, 120, scn.tz).model_copy(update={"bucket_s": 300})])
    controller = build_controller(pool)
    replayed = warm_state(controller, scn, pool.scaling.tick_s).policy_states[0]
    span = scn.warmup_days * DAY_S
    opts = RunOptions(scn.options.start_epoch_s - span, span, scn.options.seed + WARMUP_SEED_OFFSET)
    full = Simulation(scn.cfg, pool, scn.traffic, opts, controller=build_controller(pool)).run()
    simulated = full.cstate.policy_states[0]
    assert isinstance(controller.policies[0], PredictivePolicy)
    assert sum(simulated.seen) == 6 * 12 - 1  # 6 h of 5-minute buckets; the last is still open
    fleet = {"loads": (), "service": (), "busy": (), "load_sum": 0.0, "running_sum": 0.0, "ready_sum": 0.0,
             "late": (), "late_at": 0, "calm_since_s": None}
    watched = replace(simulated.watch, ticks=0, completions_at=None, **fleet)
    assert simulated.watch.late_extra == 0  # no request ran late: the late guard added nothing
    assert simulated.watch.loads and simulated.watch.rates  # the run did watch the fleet
    assert replayed == replace(simulated, watch=watched)


def test_predictive_beats_reactive_target_tracking_on_a_sharp_ramp(tmp_path: Path) -> None:
    """0.5 → 7 req/s at 01:00 with 2-minute cold starts, seed 3. Reactive target tracking (three 1-minute
    datapoints above target, then a cold start) queues the first minutes of the ramp; predictive has seen a week
    of ramps and asked for the capacity one lead time ahead. Pinned: better SLO attainment, and the capacity is
    there at 01:00. Not pinned: cost - predictive buys more headroom than target tracking here (reported). The
    defaults' smoothing quantile (0.6 of a slot and two neighbours either side) starts part of the ramp's
    capacity one bucket (15 min) early, and nothing before that."""
    scn = small_scenario(tmp_path, seed=3, hours=2.0, warmup_days=7)
    predictive = with_policies(scn.pool, [predictive_spec(2.0, 120, scn.tz)])
    tt, pred = run_variants(scn, [Variant("tt", scn.pool), Variant("pred", predictive)], workers=2)
    assert pred["slo_attainment"] > tt["slo_attainment"]
    ramp_minute = 60
    assert tt["capacity_by_minute"][ramp_minute] == 1
    assert pred["capacity_by_minute"][ramp_minute] * 2.0 >= 7.0
    assert pred["capacity_by_minute"][ramp_minute - 20] == 1  # not held all night


def test_cli_compare_json_and_out(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(f"{i * 0.5},400,100\n" for i in range(2400)))
    config = tmp_path / "small.yaml"
    config.write_text(SMALL_POOL)
    _register_all()
    args = ["plan", "compare", "-c", str(config), "--trace", str(trace), "--days", "0.01", "--warmup-days", "0"]
    res = CliRunner().invoke(app, [*args, "--json", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) >= {"oracle", "policies"} and len(data["policies"]) == 7
    assert (tmp_path / "out" / "compare.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["policies"] == data["policies"]
    bad = CliRunner().invoke(app, [*args, "--traffic", "business-hours"])
    assert bad.exit_code == 2 and "choose one" in bad.output
