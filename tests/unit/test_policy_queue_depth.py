"""queue_depth against the Kubernetes Horizontal Pod Autoscaler algorithm (AverageValue metric)."""

from __future__ import annotations

import pytest

from ebbtide.core.policies.queue_depth import QueueDepthPolicy, QueueDepthSpec, QueueDepthState
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView

SPEC = QueueDepthSpec(target=10)


def signals(now_s: float, queue: int, capacity: int) -> PoolSignals:
    reps = tuple(ReplicaView(f"r{i}", ReplicaState.READY, 0, 4) for i in range(capacity))
    return PoolSignals("p", now_s, capacity, reps, queue, 0)


def once(queue: int, capacity: int, spec: QueueDepthSpec = SPEC) -> int | None:
    rec, _ = QueueDepthPolicy(spec).decide(signals(0.0, queue, capacity), QueueDepthState(), 0.0)
    return rec.desired


def test_defaults_are_hpa_defaults() -> None:
    """Kubernetes HPA docs ("Algorithm details"; --horizontal-pod-autoscaler-tolerance 0.1) and the default
    scale-down stabilization window of 300 s (HPA "Stabilization window" / behavior.scaleDown)."""
    assert (SPEC.tolerance, SPEC.scale_down_stabilization_s) == (0.1, 300.0)


@pytest.mark.parametrize(
    ("queue", "capacity", "desired"),
    [
        (11, 1, 1),  # ratio 1.10: exactly at tolerance → no change
        (12, 1, 2),  # ratio 1.20 → ceil(1 × 1.2) = 2
        (90, 10, 10),  # ratio 0.90: exactly at tolerance → no change
        (89, 10, 9),  # ratio 0.89 → ceil(8.9) = 9
        (35, 2, 4),  # ceil(2 × 1.75) = 4
        (0, 3, 0),  # nothing waiting → 0 (the controller's bounds/zero rules decide)
        (25, 0, 3),  # at zero replicas: ceil(25 / 10)
        (0, 0, 0),
    ],
)
def test_hpa_formula_and_tolerance(queue: int, capacity: int, desired: int) -> None:
    """Kubernetes HPA: desiredReplicas = ceil(currentReplicas × currentMetricValue / desiredMetricValue),
    skipped while the ratio is within the 0.1 tolerance of 1.0 (kubernetes.io, Horizontal Pod Autoscaling,
    "Algorithm details"). Both sides of the tolerance are pinned; exactly 10 % off counts as within (fixed in
    core: floats made 1.1 − 1.0 slightly exceed 0.1).
    """
    assert once(queue, capacity) == desired


@pytest.mark.parametrize(("t", "desired"), [(0.0, 4), (1.0, 4), (299.0, 4), (300.0, 0)])
def test_scale_down_stabilization_holds_the_highest_recommendation_for_300_s(t: float, desired: int) -> None:
    """HPA scale-down stabilization (kubernetes.io, "Stabilization window", default 300 s): the highest
    recommendation within the window is used, so 4 replicas recommended at t=0 hold until t=300."""
    policy = QueueDepthPolicy(SPEC)
    state = policy.initial_state()
    recs = {}
    for k in range(0, 301):
        rec, state = policy.decide(signals(float(k), 40 if k == 0 else 0, 4), state, float(k))
        recs[float(k)] = rec
    assert recs[t].desired == desired
    if 0 < t < 300:
        assert "stabilization" in recs[t].reason


def test_scale_up_is_not_stabilized() -> None:
    """HPA's default scale-up stabilization window is 0 s (kubernetes.io, "Default Behavior"): a higher
    recommendation applies at once, even right after a lower one."""
    policy = QueueDepthPolicy(SPEC)
    state = policy.initial_state()
    _, state = policy.decide(signals(0.0, 10, 1), state, 0.0)
    rec, _ = policy.decide(signals(1.0, 50, 1), state, 1.0)
    assert rec.desired == 5


def test_history_is_bounded_by_the_window() -> None:
    """The stabilization history keeps only the window (HPA keeps recommendations of the window): memory stays
    bounded on a long run."""
    policy = QueueDepthPolicy(QueueDepthSpec(target=10, scale_down_stabilization_s=30))
    state = policy.initial_state()
    for k in range(1000):
        _, state = policy.decide(signals(float(k), 5, 1), state, float(k))
    assert len(state.history) == 30
