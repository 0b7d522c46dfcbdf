"""step against Application Auto Scaling step scaling (StepScalingPolicyConfiguration, StepAdjustment)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from ebbtide.core.policies.base import Recommendation
from ebbtide.core.policies.step import StepPolicy, StepSpec
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView

TICK_S = 1.0
ISSUE_SHAPE = {
    "kind": "step",
    "metric": "queue_depth",
    "steps": [{"lower": 10, "change": 1}, {"lower": 50, "change": 2}],
}


def signals(now_s: float, capacity: int, queue: int = 0, inflight: int = 0, arrivals: int = 0) -> PoolSignals:
    reps = tuple(
        ReplicaView(f"r{i}", ReplicaState.READY, inflight if i == 0 else 0, 1000) for i in range(capacity)
    )
    return PoolSignals("p", now_s, capacity, reps, queue, arrivals)


def run(
    spec: StepSpec, until_s: float, capacity: int, **series: Callable[[float], int]
) -> dict[float, Recommendation]:
    policy = StepPolicy(spec)
    state = policy.initial_state()
    out = {}
    for k in range(int(until_s / TICK_S) + 1):
        t = k * TICK_S
        rec, state = policy.decide(signals(t, capacity, **{n: f(t) for n, f in series.items()}), state, t)
        out[t] = rec
    return out


def const(v: int) -> Callable[[float], int]:
    return lambda _t: v


def test_issue_shape_and_aas_defaults() -> None:
    """StepScalingPolicyConfiguration: MetricAggregationType "if null, the value is treated as Average";
    ebbtide's built-in alarm uses 1-minute periods and one evaluation period (Application Auto Scaling API
    reference).
    """
    spec = StepSpec.model_validate(ISSUE_SHAPE)
    assert spec.intervals() == [(10, 50), (50, float("inf"))]
    assert (spec.aggregation, spec.period_s, spec.evaluation_periods, spec.min_adjustment_magnitude) == (
        "average",
        60.0,
        1,
        None,
    )


@pytest.mark.parametrize(
    ("queue", "desired"),
    [(9, None), (10, 3), (49, 3), (50, 4), (500, 4)],
)
def test_step_bounds_lower_inclusive_upper_exclusive(queue: int, desired: int | None) -> None:
    """AAS StepAdjustment: above the threshold "the lower bound is inclusive ... the upper bound is exclusive"
    (StepAdjustment API reference); ChangeInCapacity adds to the current capacity (2 here). Below the first
    step: no opinion.
    """
    recs = run(StepSpec.model_validate(ISSUE_SHAPE), 60, 2, queue=const(queue))
    assert recs[60.0].desired == desired


def test_evaluates_once_per_period_and_holds_between() -> None:
    """A CloudWatch alarm evaluates one datapoint per period (1 minute here) and re-invokes the policy per
    period while in ALARM (AAS step scaling): no opinion before the first period closes, then the opinion
    holds until the next close even if the metric moves, so one breach is not applied once per controller
    tick.
    """
    recs = run(StepSpec.model_validate(ISSUE_SHAPE), 120, 2, queue=lambda t: 60 if t < 60 else 0)
    assert recs[59.0].desired is None
    assert recs[60.0].desired == 4
    assert recs[119.0].desired == 4  # queue is 0 since t=60, but the next datapoint closes at t=120
    assert recs[120.0].desired is None


@pytest.mark.parametrize(("aggregation", "desired"), [("average", 3), ("maximum", 4), ("minimum", None)])
def test_metric_aggregation(aggregation: str, desired: int | None) -> None:
    """MetricAggregationType Average | Minimum | Maximum (StepScalingPolicyConfiguration): the queue is 0 for
    the first half of the minute and 40 for the second: average 20 → step [10, 30) +1, maximum 40 → [30, ∞)
    +2, minimum 0 → no step.
    """
    spec = StepSpec.model_validate(
        {"steps": [{"lower": 10, "change": 1}, {"lower": 30, "change": 2}], "aggregation": aggregation}
    )
    recs = run(spec, 60, 2, queue=lambda t: 0 if t < 30 else 40)
    assert recs[60.0].desired == desired


def test_evaluation_periods() -> None:
    """With 2 evaluation periods the value seen by the steps aggregates 2 one-minute datapoints (CloudWatch
    EvaluationPeriods): nothing at the first minute, the average of both at the second."""
    spec = StepSpec.model_validate({**ISSUE_SHAPE, "evaluation_periods": 2})
    recs = run(spec, 120, 2, queue=lambda t: 60 if t < 60 else 20)
    assert recs[60.0].desired is None and "1/2 datapoints" in recs[60.0].reason
    assert recs[120.0].desired == 3  # (60 + 20) / 2 = 40 → +1


@pytest.mark.parametrize(
    ("capacity", "pct", "min_mag", "desired"),
    [
        (4, 25, None, 5),  # 25 % of 4 = 1
        (4, 25, 2, 6),  # AAS example: 25 % of 4 tasks = 1, MinAdjustmentMagnitude 2 → +2
        (10, 25, None, 12),  # 2.5 → rounded down to 2
        (4, 10, None, 5),  # 0.4 → between 0 and 1 → 1
        (4, -10, None, 3),  # -0.4 → between 0 and -1 → -1
        (10, -25, None, 8),  # -2.5 → rounded up to -2
        (10, -100, None, 0),
    ],
)
def test_percent_change_in_capacity(capacity: int, pct: float, min_mag: int | None, desired: int) -> None:
    """PercentChangeInCapacity rounding (Application Auto Scaling step scaling, "Step adjustments"): > 1
    rounded down, in (0, 1) → 1, in (-1, 0) → -1, < -1 rounded up; MinAdjustmentMagnitude example from the
    StepScalingPolicyConfiguration API reference (25 % of 4 with minimum 2 → +2).
    """
    spec = StepSpec.model_validate(
        {"steps": [{"lower": 0, "change_pct": pct}], "min_adjustment_magnitude": min_mag}
    )
    assert run(spec, 60, capacity, queue=const(5))[60.0].desired == desired


def test_exact_capacity_and_scale_in_steps() -> None:
    """ExactCapacity sets the count; negative ChangeInCapacity removes (StepAdjustment ScalingAdjustment: "a
    negative number removes from the current capacity"); a no-action band between in and out steps, as in the
    CDK's scaleOnMetric example ({upper: 10, change: -1}, {lower: 50, change: +1})."""
    spec = StepSpec.model_validate(
        {
            "steps": [
                {"upper": 2, "change": -1},
                {"lower": 50, "upper": 100, "change": 1},
                {"lower": 100, "exact": 9},
            ]
        }
    )
    assert run(spec, 60, 3, queue=const(1))[60.0].desired == 2
    assert run(spec, 60, 3, queue=const(2))[60.0].desired is None  # band [2, 50): no opinion
    assert run(spec, 60, 3, queue=const(99))[60.0].desired == 4
    assert run(spec, 60, 3, queue=const(100))[60.0].desired == 9
    assert run(spec, 60, 1, queue=const(0))[60.0].desired == 0
    big = StepSpec.model_validate({"steps": [{"upper": 2, "change": -5}]})
    assert run(big, 60, 2, queue=const(0))[60.0].desired == 0  # never negative


@pytest.mark.parametrize(
    ("metric", "series", "capacity", "desired"),
    [
        ("inflight", {"inflight": const(12)}, 2, 3),
        ("outstanding_per_replica", {"inflight": const(8), "queue": const(14)}, 2, 3),  # 22 / 2 = 11
        ("outstanding_per_replica", {"inflight": const(8), "queue": const(11)}, 2, None),  # 19 / 2 = 9.5
        (
            "invocations_per_replica_per_minute",
            {"arrivals": lambda t: int(t * 10 / 60)},
            2,
            None,
        ),  # 5/min/replica
        ("invocations_per_replica_per_minute", {"arrivals": lambda t: int(t * 2)}, 2, 4),  # 60/min/replica
    ],
)
def test_metrics(
    metric: str, series: dict[str, Callable[[float], int]], capacity: int, desired: int | None
) -> None:
    """The four metrics a step policy can watch (DESIGN §4 step: "ordered thresholds on a metric");
    invocations per replica are per minute like SageMakerVariantInvocationsPerInstance.
    """
    spec = StepSpec.model_validate({**ISSUE_SHAPE, "metric": metric})
    assert run(spec, 60, capacity, **series)[60.0].desired == desired


@pytest.mark.parametrize(
    "steps",
    [
        [{"lower": 10, "change": 1}, {"lower": 5, "change": 2}],  # out of order / overlapping
        [{"lower": 0, "upper": 20, "change": 1}, {"lower": 10, "change": 2}],  # overlap
        [{"lower": 10, "change": 1, "exact": 3}],  # two adjustments
        [{"lower": 10}],  # no adjustment
        [{"change": 1}],  # no bound
        [{"lower": 10, "upper": 10, "change": 1}],  # empty
        [{"lower": 0, "change": 1}, {"upper": 5, "change": -1}],  # only the first step may omit lower
        [],
    ],
)
def test_invalid_steps_are_rejected(steps: list[dict[str, float]]) -> None:
    """AAS StepAdjustment rules: "the ranges of your step adjustments can't overlap"; at most one null lower
    bound; lower and upper can't both be null (StepAdjustment API reference). Gaps are allowed here (no-action
    band).
    """
    with pytest.raises(ValidationError):
        StepSpec.model_validate({"steps": steps})
