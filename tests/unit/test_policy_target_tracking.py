"""target_tracking against AWS Application Auto Scaling target tracking (SageMaker variant invocations per
instance).

Virtual timeline from t=0 in steps of ``k * TICK_S``; arrivals are a cumulative counter built from per-minute
rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.core.policies.base import Recommendation
from ebbtide.core.policies.target_tracking import (
    TargetTrackingPolicy,
    TargetTrackingSpec,
    TargetTrackingState,
)
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView

TICK_S = 5.0


def signals(now_s: float, arrivals: int, ready: int, starting: int = 0) -> PoolSignals:
    reps = tuple(ReplicaView(f"r{i}", ReplicaState.READY, 0, 4) for i in range(ready)) + tuple(
        ReplicaView(f"s{i}", ReplicaState.STARTING, 0, 4) for i in range(starting)
    )
    return PoolSignals("p", now_s, ready + starting, reps, 0, arrivals)


def cumulative(rates_per_min: Sequence[float], t: float) -> int:
    """Arrivals counter at ``t`` for a constant rate within each minute (the last rate continues)."""
    minute, into = int(t // 60), (t % 60) / 60
    full = sum(rates_per_min[min(m, len(rates_per_min) - 1)] for m in range(minute))
    return int(full + rates_per_min[min(minute, len(rates_per_min) - 1)] * into)


def run(
    spec: TargetTrackingSpec, rates_per_min: Sequence[float], ready: int, until_s: float, starting: int = 0
) -> dict[float, Recommendation]:
    policy = TargetTrackingPolicy(spec)
    state: TargetTrackingState = policy.initial_state()
    out: dict[float, Recommendation] = {}
    for k in range(int(until_s / TICK_S) + 1):
        t = k * TICK_S
        rec, state = policy.decide(signals(t, cumulative(rates_per_min, t), ready, starting), state, t)
        out[t] = rec
    return out


SPEC = TargetTrackingSpec(target=600)


def test_defaults_are_the_aas_alarm_defaults() -> None:
    """AAS target tracking creates a high alarm of 3 × 1-minute datapoints above target and a low alarm of
    15 × 1-minute datapoints below 90 % of target (Application Auto Scaling User Guide, "How target tracking
    scaling works"; SageMaker "SageMakerVariantInvocationsPerInstance" is per minute)."""
    assert (SPEC.scale_out_datapoints, SPEC.scale_in_datapoints, SPEC.scale_in_ratio) == (3, 15, 0.9)
    assert SPEC.metric == "invocations_per_replica_per_minute"


@pytest.mark.parametrize(
    ("t", "desired", "why"),
    [
        (0.0, None, "no complete 1-minute datapoint yet"),
        (55.0, None, "still no datapoint"),
        (60.0, 1, "1 breaching minute: hold"),
        (175.0, 1, "2 breaching minutes, 5 s before the 3rd closes: hold"),
        (180.0, 2, "3rd breaching minute closes: ceil(700 / 600) = 2"),
        (300.0, 2, "still breaching"),
    ],
)
def test_scale_out_needs_exactly_three_breaching_minutes(t: float, desired: int | None, why: str) -> None:
    """AAS target tracking (Application Auto Scaling User Guide, target tracking): the scale-out alarm fires
    after 3 consecutive 1-minute datapoints above target; new capacity = ceil(current × metric / target).
    """
    recs = run(SPEC, [700], ready=1, until_s=300)
    assert recs[t].desired == desired, why


@pytest.mark.parametrize(("rate", "scales_out"), [(600, False), (601, True)])
def test_scale_out_threshold_is_strictly_above_target(rate: float, scales_out: bool) -> None:
    """The AAS high alarm is "greater than target" (Application Auto Scaling target tracking): at exactly the
    target nothing happens; one invocation per minute more breaches."""
    recs = run(SPEC, [rate], ready=1, until_s=180)
    assert (recs[180.0].desired == 2) is scales_out
    assert ("> 600 for 3 min" in recs[180.0].reason) is scales_out


def test_per_minute_not_per_second() -> None:
    """SageMakerVariantInvocationsPerInstance is a per-minute sum (SageMaker autoscaling docs): 11 requests/s
    on one replica = 660/min > 600 → scale out; reading it per second (11 < 600) would never scale.
    """
    recs = run(SPEC, [11 * 60], ready=1, until_s=180)
    assert recs[180.0].desired == 2


def test_a_normal_minute_resets_the_scale_out_count() -> None:
    """CloudWatch alarms need *consecutive* breaching datapoints (3 of 3, AAS target tracking alarms)."""
    recs = run(SPEC, [700, 700, 500, 700, 700, 700], ready=1, until_s=360)
    assert [recs[t].desired for t in (180.0, 240.0, 300.0, 355.0)] == [1, 1, 1, 1]
    assert recs[360.0].desired == 2


@pytest.mark.parametrize(
    ("t", "desired"),
    [(14 * 60.0, 2), (15 * 60.0 - TICK_S, 2), (15 * 60.0, 1)],
)
def test_scale_in_needs_exactly_fifteen_low_minutes(t: float, desired: int) -> None:
    """AAS target tracking (Application Auto Scaling User Guide): the scale-in alarm needs 15 consecutive
    1-minute datapoints below 90 % of target; 2 replicas at 250/min each → ceil(500 / 600) = 1.
    """
    recs = run(SPEC, [500], ready=2, until_s=15 * 60)
    assert recs[t].desired == desired


@pytest.mark.parametrize(("per_replica", "scales_in"), [(540, False), (539, True)])
def test_scale_in_threshold_is_strictly_below_ninety_percent(per_replica: float, scales_in: bool) -> None:
    """The AAS low alarm is "less than 90 % of target" (Application Auto Scaling target tracking): 540/min per
    replica with target 600 is exactly 90 % and holds; 539 scales in. 20 replicas so the drop is visible."""
    recs = run(SPEC, [per_replica * 20], ready=20, until_s=15 * 60)
    expected = 18 if scales_in else 20  # ceil(539 × 20 / 600) = 18
    assert recs[15 * 60.0].desired == expected


def test_high_alarm_never_asks_for_less_than_capacity_while_replicas_start() -> None:
    """AAS target tracking only adds capacity on the high alarm (Application Auto Scaling User Guide, "scale
    out ... adding capacity"). 1 ready + 2 starting, 700/min: per ready replica 700 > 600, but ceil(700/600) =
    2 < 3; the policy must hold 3 rather than recommend removing a starting replica (fixed in core).
    """
    recs = run(SPEC, [700], ready=1, starting=2, until_s=180)
    assert recs[180.0].desired == 3


def test_custom_datapoints() -> None:
    """Datapoints are configurable like the alarm's EvaluationPeriods (AAS creates the alarm; ebbtide exposes
    it).
    """
    spec = TargetTrackingSpec(target=600, scale_out_datapoints=1)
    recs = run(spec, [700], ready=1, until_s=60)
    assert recs[55.0].desired is None and recs[60.0].desired == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 300, 539, 540, 600, 601, 900, 1500]), min_size=1, max_size=20))
def test_property_alarms_need_consecutive_minutes(rates: list[int]) -> None:
    """AAS alarm semantics as a property: the policy recommends more than the 2 current replicas only if the
    last 3 closed minutes were all above 600/replica, and fewer only if the last 15 were all below
    540/replica; when the 3 (resp. 15) minutes did breach and the latest minute needs more (fewer), it does
    recommend it.
    """
    ready = 2
    policy = TargetTrackingPolicy(SPEC)
    state = policy.initial_state()
    for k in range(len(rates) * 3 + 1):
        t = k * 20.0
        rec, state = policy.decide(signals(t, cumulative([r * ready for r in rates], t), ready), state, t)
        closed = [r for r in rates[: int(t // 60)]]
        if rec.desired is None:
            assert not closed
            continue
        needed = -(-closed[-1] * ready // 600)
        out_ok = len(closed) >= 3 and all(r > 600 for r in closed[-3:])
        in_ok = len(closed) >= 15 and all(r < 540 for r in closed[-15:])
        assert (rec.desired > ready) == (out_ok and needed > ready)
        assert (rec.desired < ready) == (in_ok and needed < ready)
