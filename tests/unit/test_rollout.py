"""core/rollout: canary steps on a virtual clock, rollback on errors or latency, promotion when healthy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ebbtide.core.rollout import ArmStats, RolloutSpec, RolloutState, arm_stats, step_rollout, traffic_percent

SPEC = RolloutSpec.model_validate({"mode": "canary", "steps": [10, 50, 100], "step_interval_s": 60,
                                   "rollback": {"min_requests": 20, "max_error_rate_delta": 0.05,
                                                "max_p95_ratio": 1.5}})
GOOD = ArmStats(100, 1, 1.0)


def test_canary_walks_its_steps_then_promotes() -> None:
    state = RolloutState(step_started_s=0.0)
    assert traffic_percent(SPEC, state) == 10
    state, event = step_rollout(SPEC, state, GOOD, ArmStats(30, 0, 1.1), 59.9)
    assert event is None and state.step == 0
    state, event = step_rollout(SPEC, state, GOOD, ArmStats(30, 0, 1.1), 60.0)
    assert state.step == 1 and traffic_percent(SPEC, state) == 50 and "50%" in str(event)
    state, _ = step_rollout(SPEC, state, GOOD, ArmStats(30, 0, 1.1), 120.0)
    assert state.step == 2 and traffic_percent(SPEC, state) == 100
    state, event = step_rollout(SPEC, state, GOOD, ArmStats(30, 0, 1.1), 180.0)
    assert state.status == "promoted" and event == "promote candidate"


def test_no_verdict_and_no_step_before_min_requests() -> None:
    state = RolloutState(step_started_s=0.0)
    state, event = step_rollout(SPEC, state, GOOD, ArmStats(19, 19, 9.0), 600.0)
    assert state.status == "running" and state.step == 0 and event is None


@pytest.mark.parametrize(("candidate", "needle"), [
    (ArmStats(40, 3, 1.0), "error rate"),      # 7.5% vs 1%: delta 6.5% > 5%
    (ArmStats(40, 0, 1.6), "P95"),             # 1.6× the baseline
])
def test_rollback_when_the_candidate_is_worse(candidate: ArmStats, needle: str) -> None:
    state, event = step_rollout(SPEC, RolloutState(), GOOD, candidate, 1.0)
    assert state.status == "rolled_back" and needle in str(event)
    assert traffic_percent(SPEC, state) == 0


@pytest.mark.parametrize("candidate", [ArmStats(40, 2, 1.0), ArmStats(40, 0, 1.5)])
def test_exactly_at_the_margin_is_not_a_rollback(candidate: ArmStats) -> None:
    state, _ = step_rollout(SPEC, RolloutState(), GOOD, candidate, 1.0)
    assert state.status == "running"


def test_arm_stats_window_and_p95() -> None:
    samples = [(float(t), float(t % 20), t % 10 != 0) for t in range(100)]
    stats = arm_stats(samples, since_s=50)
    assert stats.requests == 50 and stats.errors == 5 and stats.p95_s == 19.0


def test_steps_must_increase() -> None:
    with pytest.raises(ValidationError):
        RolloutSpec.model_validate({"mode": "canary", "steps": [50, 10]})
