"""``plan tune``: the bracketing search on a small case returns a config that validates and meets the floor,
and the search itself (probes, stopping) behaves as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ebbtide.config import Config
from ebbtide.plan.baselines import with_policies
from ebbtide.plan.runner import Variant, run_variants
from ebbtide.plan.tune import TuneError, _next_probes, candidates, split_train_test, tune
from tests.sim.test_compare_fixtures import small_scenario


def test_probes_split_the_open_bracket_evenly() -> None:
    assert _next_probes(-1, 17, 2) == [5, 11]
    assert _next_probes(5, 11, 2) == [7, 9]
    assert _next_probes(7, 9, 2) == [8]
    assert _next_probes(7, 8, 2) == []


def test_candidates_are_sorted_and_centred_on_the_slo_throughput() -> None:
    grid = candidates("predictive", 10.0, 32)
    assert grid == sorted(grid) and grid[0] == 5.0 and grid[-1] == 13.0 and 10.0 in grid
    assert candidates("target_tracking", 10.0, 32)[-1] == 780.0


def test_tune_returns_a_pasteable_config_that_meets_the_floor(tmp_path: Path) -> None:
    scn = small_scenario(tmp_path, seed=2, hours=2.0, warmup_days=2)
    result = tune(scn, "target_tracking", min_slo=0.9, budget=4, workers=2)
    best = result["best"]
    assert best is not None and best["slo_attainment"] >= 0.9
    assert len(result["trials"]) <= 4
    assert all(t["meets"] == (t["slo_attainment"] >= 0.9) for t in result["trials"])
    assert best["cost_usd"] == min(t["cost_usd"] for t in result["trials"] if t["meets"])
    pasted = yaml.safe_load(yaml.safe_dump({"scaling": {"policies": best["policies"]}}))
    cfg = Config.model_validate({"pools": [{"name": "p", **pasted}]})
    (spec,) = cfg.pools[0].scaling.policies
    assert spec.kind == "target_tracking" and spec.target == best["value"]
    # The pasted policy, run again on the user's pool, gives the attainment the search reported.
    (again,) = run_variants(scn, [Variant("again", with_policies(scn.pool, [spec]))], workers=1)
    assert again["slo_attainment"] == best["slo_attainment"]


def test_unknown_policy_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TuneError, match="--policy = 'schedule'"):
        tune(small_scenario(tmp_path, hours=0.5, warmup_days=0), "schedule")


def test_out_of_sample_tune_searches_the_training_hours_and_reports_the_winner_on_the_next_ones(
    tmp_path: Path,
) -> None:
    scn = small_scenario(tmp_path, seed=2, hours=2.0, warmup_days=1)
    hour = 1 / 24
    result = tune(scn, "target_tracking", min_slo=0.9, budget=4, workers=2, train_days=hour, test_days=hour)
    train, test = split_train_test(scn, hour, hour)
    assert test is not None and test.warmup_days == pytest.approx(1 + hour)
    assert result["train"]["window"]["measured"] == ["2028-02-23T00:00:00-05:00", "2028-02-23T01:00:00-05:00"]
    assert result["test"]["window"]["measured"] == ["2028-02-23T01:00:00-05:00", "2028-02-23T02:00:00-05:00"]
    best = result["best"]
    assert best is not None
    # The test figure is the winner run on the test hour, which the search never ran.
    (spec,) = Config.model_validate({"pools": [{"name": "p", "scaling": {"policies": best["policies"]}}]}).pools[
        0
    ].scaling.policies
    (again,) = run_variants(test, [Variant("again", with_policies(scn.pool, [spec]))], workers=1)
    assert again["cost_usd"] == result["test"]["best"]["cost_usd"]
    assert again["slo_attainment"] == result["test"]["best"]["slo_attainment"]
    (on_train,) = run_variants(train, [Variant("again", with_policies(scn.pool, [spec]))], workers=1)
    assert on_train["cost_usd"] == best["cost_usd"]
    with pytest.raises(TuneError, match="must fit in"):
        tune(scn, "target_tracking", train_days=2 * hour, test_days=hour)
