"""The policy registry and config: issue 4's exact YAML lines load through ``ebbtide.config.Config``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ebbtide.config import Config, ConfigError, build_controller, load_config
from ebbtide.core.policies import POLICY_SPECS
from ebbtide.core.policies.concurrency import ConcurrencyPolicy
from ebbtide.core.policies.ongoing_requests import OngoingRequestsPolicy
from ebbtide.core.policies.step import StepPolicy

ISSUE_4_LINES = """\
- {kind: step, metric: queue_depth, steps: [{lower: 10, change: 1}, {lower: 50, change: 2}]}
- {kind: concurrency, target_per_replica: 4}            # stable_window_s 60, panic_window_pct 10, panic_threshold 2.0
- {kind: ongoing_requests, target_per_replica: 2}       # upscale_delay_s 30, downscale_delay_s 600
"""


def config_with(policies_yaml: str) -> dict[str, object]:
    policies = yaml.safe_load(policies_yaml)
    return {
        "pools": [
            {"name": "default", "scaling": {"min_replicas": 1, "max_replicas": 5, "policies": policies}}
        ]
    }


def test_issue_4_config_lines_load_and_build() -> None:
    """Issue 4 "Config shape (a test and the docs use exactly this)"; DESIGN §3 config through pydantic."""
    cfg = Config.model_validate(config_with(ISSUE_4_LINES))
    ctl = build_controller(cfg.pools[0])
    assert [type(p) for p in ctl.policies] == [StepPolicy, ConcurrencyPolicy, OngoingRequestsPolicy]
    assert [p.name for p in ctl.policies] == ["step", "concurrency", "ongoing_requests"]


def test_docs_show_the_same_lines() -> None:
    """docs/policies.md quotes the issue 4 shapes verbatim, so users copy what is tested."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    for line in ISSUE_4_LINES.splitlines():
        assert line in docs


def test_registry_is_one_line_per_policy() -> None:
    """Adding a policy = one file + one line in POLICY_SPECS (issue 4 item 1); each spec's ``kind`` is its
    key.
    """
    assert set(POLICY_SPECS) >= {
        "target_tracking",
        "queue_depth",
        "schedule",
        "step",
        "concurrency",
        "ongoing_requests",
    }
    for kind, spec in POLICY_SPECS.items():
        assert spec.model_fields["kind"].default == kind


def test_bad_policy_config_errors_name_file_and_field(tmp_path: Path) -> None:
    """DESIGN §3 / issue 3 "Bad input": errors name the file and the field; new kinds are listed
    automatically.
    """
    path = tmp_path / "ebbtide.yaml"
    path.write_text(yaml.safe_dump(config_with("- {kind: stepp, steps: []}")))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "ongoing_requests" in str(err.value)
    path.write_text(yaml.safe_dump(config_with("- {kind: concurrency, target_per_replica: 0}")))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "`pools.0.scaling.policies.0.target_per_replica` = 0" in str(err.value)
    path.write_text(yaml.safe_dump(config_with("- {kind: step, steps: [{lower: 10, change: 1, chnage: 2}]}")))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "`pools.0.scaling.policies.0.steps.0.chnage` = 2: unknown key" in str(err.value)
