"""ebbtide ``step`` policies ↔ AAS step scaling policies plus the CloudWatch alarms that invoke them.

ebbtide's steps use absolute metric bounds in one policy; AAS needs one alarm per direction and bounds
relative to that alarm's threshold. So a step spec becomes up to two policies: ``ebbtide-step-<i>-out`` (alarm
``>= lowest scale-out bound``) and ``ebbtide-step-<i>-in`` (alarm ``< highest scale-in bound``). AAS allows no
gaps between a policy's steps: gaps are filled with a 0 adjustment, and 0 adjustments are dropped on import.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ebbtide.export.sagemaker.plan import METRIC_NAMESPACE, POLICY_PREFIX, PlanError, PolicyContext

__all__ = ["STEP_METRICS", "step_from_aas", "step_policies"]

STEP_METRICS: dict[str, tuple[str, str]] = {
    "invocations_per_replica_per_minute": ("AWS/SageMaker", "InvocationsPerInstance"),
    "queue_depth": (METRIC_NAMESPACE, "QueueDepth"),
    "inflight": (METRIC_NAMESPACE, "InFlight"),
    "outstanding_per_replica": (METRIC_NAMESPACE, "OutstandingPerInstance"),
}
_ADJUSTMENT = {
    "change": "ChangeInCapacity",
    "change_pct": "PercentChangeInCapacity",
    "exact": "ExactCapacity",
}
STEP_NAME = re.compile(r"^ebbtide-step-(\d+)-(out|in)$")

Step = tuple[float, float, str, float]


def step_policies(spec: Any, index: int, path: str, ctx: PolicyContext) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``[(PutScalingPolicy kwargs, {"PolicyName", "Alarm": PutMetricAlarm kwargs}), ...]``."""
    warnings, cooldowns = ctx.warnings, ctx.cooldowns
    namespace, metric = STEP_METRICS[spec.metric]
    if namespace == METRIC_NAMESPACE:
        warnings.append(f"{path}: alarms on {namespace}/{metric}, which the ebbtide gateway must publish")
    if spec.evaluation_periods > 1:
        warnings.append(
            f"{path}: AAS alarms need {spec.evaluation_periods} consecutive breaching periods; ebbtide "
            "aggregates "
            "the last periods into one value, so the two can differ near the thresholds"
        )
    steps: list[Step] = []
    for (lo, hi), raw in zip(spec.intervals(), spec.steps, strict=True):
        kind = next(k for k in _ADJUSTMENT if getattr(raw, k) is not None)
        value = float(getattr(raw, kind))
        if kind != "exact" and value == 0:
            continue
        steps.append((lo, hi, kind, value))
    low = [s for s in steps if s[3] < 0 and s[2] != "exact"]
    high = [s for s in steps if s not in low]
    if low and any(s[2] == "exact" and s[0] < low[-1][1] for s in high):
        raise PlanError(
            f"{path}: an exact step below the scale-in steps has no AAS direction; move or split it"
        )
    period = max(60, round(spec.period_s / 60) * 60)
    if period != spec.period_s:
        warnings.append(f"{path}: period_s = {spec.period_s:g} exported as a {period} s CloudWatch period")
    dims = ctx.dimensions
    statistic = "Sum" if namespace == "AWS/SageMaker" else spec.aggregation.capitalize()
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for direction, group in (("out", high), ("in", low)):
        if not group:
            continue
        kinds = {s[2] for s in group}
        if len(kinds) > 1:
            raise PlanError(
                f"{path}: scale-{direction} steps mix {sorted(kinds)}; an AAS step policy has one "
                "AdjustmentType"
            )
        threshold = group[0][0] if direction == "out" else group[-1][1]
        if math.isinf(threshold):
            raise PlanError(f"{path}: the scale-{direction} steps need a finite bound to put the alarm on")
        adjustments = _relative(_fill_gaps(group, path), threshold)
        name = f"{POLICY_PREFIX}step-{index}-{direction}"
        config: dict[str, Any] = {
            "AdjustmentType": _ADJUSTMENT[group[0][2]],
            "StepAdjustments": adjustments,
            "Cooldown": cooldowns[0] if direction == "out" else cooldowns[1],
            "MetricAggregationType": spec.aggregation.capitalize(),
        }
        if group[0][2] == "change_pct" and spec.min_adjustment_magnitude is not None:
            config["MinAdjustmentMagnitude"] = spec.min_adjustment_magnitude
        alarm = {
            "AlarmName": f"{POLICY_PREFIX}{ctx.endpoint}-{ctx.variant}-step-{index}-{direction}",
            "MetricName": metric,
            "Namespace": namespace,
            "Statistic": statistic,
            "Dimensions": dims,
            "Period": period,
            "EvaluationPeriods": spec.evaluation_periods,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold"
            if direction == "out"
            else "LessThanThreshold",
        }
        out.append((ctx.policy(name, "StepScaling", config), {"PolicyName": name, "Alarm": alarm}))
    return out


def _fill_gaps(group: list[Step], path: str) -> list[Step]:
    filled: list[Step] = []
    for step in group:
        if filled and step[0] > filled[-1][1]:
            if step[2] == "exact":
                raise PlanError(f"{path}: exact steps with a gap between them cannot be one AAS step policy")
            filled.append((filled[-1][1], step[0], step[2], 0.0))
        filled.append(step)
    return filled


def _relative(group: list[Step], threshold: float) -> list[dict[str, Any]]:
    adjustments: list[dict[str, Any]] = []
    for lo, hi, _kind, value in group:
        entry: dict[str, Any] = {}
        if not math.isinf(lo):
            entry["MetricIntervalLowerBound"] = lo - threshold
        if not math.isinf(hi):
            entry["MetricIntervalUpperBound"] = hi - threshold
        entry["ScalingAdjustment"] = round(value)
        adjustments.append(entry)
    return adjustments


def step_from_aas(policies: list[dict[str, Any]], alarms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One ebbtide step spec from the out/in AAS policies of one index and their alarms."""
    steps: list[dict[str, Any]] = []
    metric = "queue_depth"
    extra: dict[str, Any] = {}
    for policy in policies:
        config = policy["StepScalingPolicyConfiguration"]
        alarm = alarms.get(policy["PolicyName"])
        if alarm is None:
            raise ValueError(f"step policy {policy['PolicyName']!r} has no CloudWatch alarm invoking it")
        metric = next(
            (k for k, v in STEP_METRICS.items() if v == (alarm["Namespace"], alarm["MetricName"])), ""
        )
        if not metric:
            raise ValueError(
                f"alarm {alarm['AlarmName']!r} watches {alarm['Namespace']}/{alarm['MetricName']}"
            )
        kind = {v: k for k, v in _ADJUSTMENT.items()}[config["AdjustmentType"]]
        threshold = float(alarm["Threshold"])
        for adj in config["StepAdjustments"]:
            if adj["ScalingAdjustment"] == 0 and kind != "exact":
                continue
            step: dict[str, Any] = {}
            if "MetricIntervalLowerBound" in adj:
                step["lower"] = threshold + float(adj["MetricIntervalLowerBound"])
            if "MetricIntervalUpperBound" in adj:
                step["upper"] = threshold + float(adj["MetricIntervalUpperBound"])
            step[kind] = adj["ScalingAdjustment"]
            steps.append(step)
        aggregation = str(config.get("MetricAggregationType") or "Average").lower()
        if aggregation != "average":
            extra["aggregation"] = aggregation
        if int(alarm.get("Period", 60)) != 60:
            extra["period_s"] = float(alarm["Period"])
        if int(alarm.get("EvaluationPeriods", 1)) != 1:
            extra["evaluation_periods"] = int(alarm["EvaluationPeriods"])
        if "MinAdjustmentMagnitude" in config:
            extra["min_adjustment_magnitude"] = int(config["MinAdjustmentMagnitude"])
    steps.sort(key=lambda s: s.get("lower", -math.inf))
    for i, step in enumerate(steps):
        nxt = steps[i + 1].get("lower") if i + 1 < len(steps) else None
        if "upper" in step and nxt is not None and step["upper"] == nxt:
            del step["upper"]
    return {"kind": "step", "metric": metric, "steps": steps, **extra}
