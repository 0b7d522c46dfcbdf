"""concurrency against the Knative Pod Autoscaler (KPA): stable/panic windows, threshold, rate limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.core.policies.base import Recommendation
from ebbtide.core.policies.concurrency import ConcurrencyPolicy, ConcurrencySpec, ConcurrencyState
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView

TICK_S = 1.0


def signals(now_s: float, ready: int, concurrency: int) -> PoolSignals:
    """``concurrency`` split as in-flight on the first replica (up to 4) and the rest queued."""
    running = min(concurrency, 4) if ready else 0
    reps = tuple(ReplicaView(f"r{i}", ReplicaState.READY, running if i == 0 else 0, 4) for i in range(ready))
    return PoolSignals("p", now_s, ready, reps, concurrency - running, 0)


def run(
    spec: ConcurrencySpec, until_s: float, ready: int, load: Callable[[float], int]
) -> dict[float, tuple[Recommendation, ConcurrencyState]]:
    policy = ConcurrencyPolicy(spec)
    state = policy.initial_state()
    out = {}
    for k in range(int(until_s / TICK_S) + 1):
        t = k * TICK_S
        rec, state = policy.decide(signals(t, ready, load(t)), state, t)
        out[t] = (rec, state)
    return out


SPEC = ConcurrencySpec(target_per_replica=4)


def test_defaults_are_knative_defaults() -> None:
    """Knative config-autoscaler defaults (knative.dev, "Additional autoscaling configuration for KPA" and the
    config-autoscaler ConfigMap): stable-window 60s, panic-window-percentage 10.0 (6 s),
    panic-threshold-percentage 200.0, max-scale-up-rate 1000.0, max-scale-down-rate 2.0,
    container-concurrency-target-default 100.
    """
    d = ConcurrencySpec()
    assert (d.stable_window_s, d.panic_window_pct, d.panic_window_s, d.panic_threshold) == (60, 10, 6, 2.0)
    assert (d.max_scale_up_rate, d.max_scale_down_rate, d.target_per_replica) == (1000, 2, 100)


@pytest.mark.parametrize(("concurrency", "panics"), [(15, False), (16, True)])
def test_panic_threshold_both_sides(concurrency: int, panics: bool) -> None:
    """KPA panics when the pod count computed from the panic window is at least panic-threshold (200 %) × the
    ready pods (knative.dev KPA docs, "Panic threshold"): 2 ready, target 4 → panic at a 6-s average ≥ 16."""
    rec, state = run(SPEC, 0, 2, lambda _t: concurrency)[0.0]
    assert (state.panic_since_s is not None) is panics
    assert rec.reason.startswith("panic") is panics
    assert rec.desired == 4  # ceil(15/4) = ceil(16/4) = 4 either way


def test_stable_mode_desired_is_the_ceiling_of_average_over_target() -> None:
    """KPA stable mode: desired pods = ceil(average concurrency over the stable window / target per pod)
    (knative.dev, "Autoscaling concepts" / KPA algorithm)."""
    rec, state = run(SPEC, 0, 1, lambda _t: 7)[0.0]
    assert state.panic_since_s is None and rec.desired == 2


def test_in_panic_never_scales_down_and_leaves_a_stable_window_after_the_last_trigger() -> None:
    """Knative: "When using panic mode, the Revision will not scale down to avoid churn. The Autoscaler will
    leave panic mode if there has been no reason to react quickly during the stable window timeframe"
    (knative.dev KPA). Load 40 for 10 s on 2 ready replicas, then 0: the last trigger is at t=12 (6-s average
    20 ≥ 16); the policy holds 10 through t=72 and drops at t=73.
    """
    recs = run(SPEC, 80, 2, lambda t: 40 if t < 10 else 0)
    triggers = [t for t, (_, s) in recs.items() if s.panic_since_s == t]
    assert max(triggers) == 12.0
    assert all(recs[t][0].desired == 10 for t in range(0, 73))
    assert recs[72.0][1].panic_since_s == 12.0
    assert recs[73.0][1].panic_since_s is None
    assert recs[73.0][0].desired == 1  # stable window all zero; max-scale-down-rate 2 → floor(2 / 2) = 1


@pytest.mark.parametrize(("t", "desired"), [(118.0, 1), (119.0, 0)])
def test_zero_only_after_a_whole_idle_stable_window(t: float, desired: int) -> None:
    """Knative: "the last replica will only be removed after there has not been any traffic ... for the entire
    duration of the stable window" (knative.dev KPA, Stable window). Load 1 until t=59, then 0: the window
    (t − 60, t] still holds the t=59 sample at t=118 and is all zero at t=119."""
    recs = run(SPEC, 120, 1, lambda now: 1 if now < 60 else 0)
    assert recs[t][0].desired == desired


def test_rate_limits() -> None:
    """max-scale-up-rate 1000: at most ceil(1000 × ready); max-scale-down-rate 2: at least floor(ready / 2)
    (Knative config-autoscaler)."""
    up, _ = run(ConcurrencySpec(target_per_replica=1), 0, 1, lambda _t: 5000)[0.0]
    assert up.desired == 1000
    down, _ = run(SPEC, 0, 10, lambda _t: 0)[0.0]
    assert down.desired == 5


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=120), st.integers(0, 5))
def test_property_panic_never_scales_down_and_rates_hold(loads: list[int], start: int) -> None:
    """Knative KPA invariants with the recommendation applied each tick (ready = capacity): while panicking
    the policy never recommends fewer than the current replicas; every recommendation respects
    max-scale-up-rate and max-scale-down-rate against the ready count.
    """
    policy = ConcurrencyPolicy(SPEC)
    state = policy.initial_state()
    ready = start
    for k, load in enumerate(loads):
        t = k * 2.0
        rec, state = policy.decide(signals(t, ready, load), state, t)
        assert rec.desired is not None
        base = max(1, ready)
        assert base // 2 <= rec.desired <= 1000 * base
        if state.panic_since_s is not None:
            assert rec.desired >= ready
        ready = rec.desired
