"""examples/predictive_grid.py: the grid it runs and the pools it builds (the runs themselves are plan's)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from ebbtide.config import load_config
from ebbtide.core.policies.predictive_spec import PredictiveSpec

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("predictive_grid", ROOT / "examples" / "predictive_grid.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_grid_is_every_combination_with_yaml_values() -> None:
    grid = _script().parse_grid(["smooth_quantile=0.5,0.6", "alike=true", "tz=UTC"])
    assert grid == {"smooth_quantile": [0.5, 0.6], "alike": [True], "tz": ["UTC"]}
    assert _script().combos({"a": [1, 2], "b": [3, 4]}) == [
        {"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]


def test_a_malformed_setting_is_named() -> None:
    with pytest.raises(SystemExit, match="--set 'smooth_quantile': expected name=value"):
        _script().parse_grid(["smooth_quantile"])


def test_settings_change_only_the_predictive_policy_and_keep_its_own_fields() -> None:
    pool = load_config(ROOT / "examples" / "seed-standby.yaml").pools[0]
    changed = _script().with_settings(pool, {"smooth_quantile": 0.5})
    (before, guard), (after, guard_after) = pool.scaling.policies, changed.scaling.policies
    assert isinstance(after, PredictiveSpec) and after.smooth_quantile == 0.5
    assert after.tz == "America/New_York" and after.capacity_per_replica_rps == before.capacity_per_replica_rps
    assert guard_after == guard and changed.scaling.standby == pool.scaling.standby
    with pytest.raises(Exception, match="smooth_quantile"):
        _script().with_settings(pool, {"smooth_quantile": 2})


def test_a_kind_prefix_sets_another_policy_of_the_pool() -> None:
    pool = load_config(ROOT / "examples" / "seed-standby.yaml").pools[0]
    changed = _script().with_settings(pool, {"queue_depth.target": 8, "error_quantile": 0.2})
    predictive, guard = changed.scaling.policies
    assert guard.kind == "queue_depth" and guard.target == 8
    assert guard.scale_down_stabilization_s == pool.scaling.policies[1].scale_down_stabilization_s
    assert isinstance(predictive, PredictiveSpec) and predictive.error_quantile == 0.2
    with pytest.raises(SystemExit, match="no step policy to set"):
        _script().with_settings(pool, {"step.cooldown_s": 1})
