"""``step``: Application Auto Scaling step scaling — ordered metric intervals, each adding/removing capacity.

Copies AAS ``StepScalingPolicyConfiguration`` (and the CDK's ``scaleOnMetric`` shape, where one policy holds
both scale-out and scale-in steps with a no-action band between them). Differences from AAS, on purpose:

- Bounds are absolute metric values (AAS bounds are offsets from the CloudWatch alarm threshold; ebbtide has
  no separate alarm, so the threshold is 0). An interval is ``lower <= value < upper``; a step without
  ``upper`` ends at the next step's ``lower`` (or +inf), a step without ``lower`` starts at -inf (first step
  only).
- The "alarm" is built in: the metric is sampled every tick and aggregated (``aggregation``, AAS
  ``MetricAggregationType``, default Average) into one datapoint per ``period_s`` (60 s, a 1-minute CloudWatch
  period); the value compared to the steps is the aggregation of the last ``evaluation_periods`` datapoints.
- The policy evaluates once per closed period, like an alarm that re-invokes its policy every period while in
  ALARM; between evaluations it repeats its last opinion, so one breach is not applied once per controller
  tick. Cooldowns are the controller's (AAS semantics).
- No matching step = no opinion (``None``): other policies decide, as with separate AAS alarms.

Adjustments: ``change`` (ChangeInCapacity, negative = scale in), ``change_pct`` (PercentChangeInCapacity,
rounded as AAS does: values > 1 rounded down, (0, 1] → 1, [-1, 0) → -1, < -1 rounded up; at least
``min_adjustment_magnitude``), or ``exact`` (ExactCapacity). Counts stay floats until the one final rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from ebbtide.core.policies.base import PolicySpec, Recommendation
from ebbtide.core.signals import PoolSignals

__all__ = ["StepAdjustment", "StepPolicy", "StepSpec", "StepState", "step_metric"]

StepMetric = Literal[
    "queue_depth", "inflight", "outstanding_per_replica", "invocations_per_replica_per_minute"
]
Aggregation = Literal["average", "maximum", "minimum"]


class StepAdjustment(PolicySpec):
    lower: float | None = Field(None, description="Inclusive lower bound of the metric; omitted = -inf.")
    upper: float | None = Field(None, description="Exclusive; omitted = next lower or +inf.")
    change: int | None = Field(None, description="ChangeInCapacity: replicas to add (negative = remove).")
    change_pct: float | None = Field(
        None, ge=-100, description="PercentChangeInCapacity: percent of capacity to add (negative = remove)."
    )
    exact: int | None = Field(None, ge=0, description="ExactCapacity: set the count to this.")

    @model_validator(mode="after")
    def _one_adjustment(self) -> StepAdjustment:
        given = [n for n in ("change", "change_pct", "exact") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"a step needs exactly one of change, change_pct, exact (got {given or 'none'})")
        if self.lower is None and self.upper is None:
            raise ValueError("a step needs lower, upper or both")
        if self.lower is not None and self.upper is not None and self.upper <= self.lower:
            raise ValueError(f"upper = {self.upper}: must be > lower = {self.lower}")
        return self


class StepSpec(PolicySpec):
    kind: Literal["step"] = "step"
    metric: StepMetric = Field(
        "queue_depth",
        description="queue_depth (waiting), inflight (running on replicas), outstanding_per_replica "
        "((inflight + queued) / ready), invocations_per_replica_per_minute (arrivals / ready / minute).",
    )
    steps: list[StepAdjustment] = Field(min_length=1, description="Ordered by lower bound, non-overlapping.")
    aggregation: Aggregation = Field("average", description="AAS MetricAggregationType.")
    period_s: float = Field(60.0, gt=0, description="One datapoint per period (CloudWatch 1-minute period).")
    evaluation_periods: int = Field(1, ge=1, description="Datapoints per evaluation.")
    min_adjustment_magnitude: int | None = Field(
        None, ge=1, description="change_pct steps change by at least this many replicas (no AAS default)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> StepSpec:
        prev_upper = -math.inf
        for i, (lo, hi) in enumerate(self.intervals()):
            if i > 0 and self.steps[i].lower is None:
                raise ValueError(f"steps[{i}].lower: only the first step may omit lower")
            if lo < prev_upper:
                raise ValueError(f"steps[{i}].lower = {lo:g}: overlaps the previous step (to {prev_upper:g})")
            if hi <= lo:
                raise ValueError(f"steps[{i}]: empty interval [{lo:g}, {hi:g})")
            prev_upper = hi
        return self

    def intervals(self) -> list[tuple[float, float]]:
        """``[lower, upper)`` of each step, with omitted bounds filled in."""
        out: list[tuple[float, float]] = []
        for i, s in enumerate(self.steps):
            lo = -math.inf if s.lower is None else s.lower
            if s.upper is not None:
                hi = s.upper
            else:
                nxt = self.steps[i + 1].lower if i + 1 < len(self.steps) else None
                hi = math.inf if nxt is None else nxt
            out.append((lo, hi))
        return out

    def build(self) -> StepPolicy:
        return StepPolicy(self)


@dataclass(frozen=True, slots=True)
class StepState:
    period_start_s: float | None = None
    samples: tuple[float, ...] = ()
    datapoints: tuple[float, ...] = ()
    last_s: float | None = None
    last_arrivals: int = 0
    held: int | None = None
    held_reason: str = "no complete datapoint yet"


def step_metric(
    metric: StepMetric, signals: PoolSignals, prev_s: float | None, prev_arrivals: int
) -> float | None:
    """One sample of ``metric``; rates need the previous tick (``None`` on the first)."""
    if metric == "queue_depth":
        return float(signals.queue_depth)
    if metric == "inflight":
        return float(signals.inflight)
    if metric == "outstanding_per_replica":
        return signals.outstanding / max(signals.ready, 1)
    if prev_s is None or signals.now_s <= prev_s:
        return None
    per_min = (signals.arrivals_total - prev_arrivals) / (signals.now_s - prev_s) * 60.0
    return per_min / max(signals.ready, 1)


def _aggregate(values: tuple[float, ...], how: Aggregation) -> float:
    if how == "maximum":
        return max(values)
    if how == "minimum":
        return min(values)
    return sum(values) / len(values)


def _pct_change(current: int, pct: float, min_magnitude: int | None) -> float:
    raw = current * pct / 100.0
    if raw > 1:
        change = math.floor(raw)
    elif raw > 0:
        change = 1
    elif raw == 0:
        change = 0
    elif raw >= -1:
        change = -1
    else:
        change = math.ceil(raw)
    if min_magnitude is not None and change != 0 and abs(change) < min_magnitude:
        change = int(math.copysign(min_magnitude, change))
    return float(change)


class StepPolicy:
    def __init__(self, spec: StepSpec) -> None:
        self.spec = spec
        self.name = "step"
        self._intervals = spec.intervals()

    def initial_state(self) -> StepState:
        return StepState()

    def decide(
        self, signals: PoolSignals, state: StepState, now_s: float
    ) -> tuple[Recommendation, StepState]:
        spec = self.spec
        sample = step_metric(spec.metric, signals, state.last_s, state.last_arrivals)
        start = state.period_start_s
        if start is None:
            start = math.floor(now_s / spec.period_s) * spec.period_s
        samples, datapoints = state.samples, state.datapoints
        held, reason = state.held, state.held_reason
        if now_s - start >= spec.period_s:
            periods = int((now_s - start) // spec.period_s)
            if samples:
                datapoints = (*datapoints, _aggregate(samples, spec.aggregation))[-spec.evaluation_periods :]
            start += periods * spec.period_s
            samples = ()
            held, reason = self._evaluate(signals.capacity, datapoints)
        if sample is not None:
            samples = (*samples, sample)
        nxt = StepState(start, samples, datapoints, now_s, signals.arrivals_total, held, reason)
        return Recommendation(self.name, held, reason), nxt

    def _evaluate(self, current: int, datapoints: tuple[float, ...]) -> tuple[int | None, str]:
        spec = self.spec
        if len(datapoints) < spec.evaluation_periods:
            return None, f"{len(datapoints)}/{spec.evaluation_periods} datapoints"
        value = _aggregate(datapoints, spec.aggregation)
        shown = f"{spec.metric} {spec.aggregation} {value:.4g}"
        pairs = zip(self._intervals, spec.steps, strict=True)
        found = [(lo, hi, s) for (lo, hi), s in pairs if lo <= value < hi]
        if not found:
            return None, f"{shown}: no step matches"
        lo, hi, step = found[0]
        desired: float
        if step.exact is not None:
            desired, how = float(step.exact), f"set {step.exact}"
        elif step.change is not None:
            desired, how = float(current + step.change), f"change {step.change:+d}"
        else:
            assert step.change_pct is not None
            desired = current + _pct_change(current, step.change_pct, spec.min_adjustment_magnitude)
            how = f"change {step.change_pct:+g}%"
        return max(0, round(desired)), f"{shown} in [{lo:g}, {hi:g}): {how}"
