"""A pool's scaling config as the exact Application Auto Scaling / SageMaker calls: pure, no boto3.

``build_plan(cfg, pool, endpoint, variant)`` returns an :class:`AasPlan` of API keyword arguments (the same
dicts boto3 takes), CloudWatch alarms for step policies, the container environment and production-variant
timeouts, and warnings for the traps seed 000 names (per-minute metric, silent ResourceId, 300 s cooldowns).

Policies with no AAS counterpart: ``queue_depth``, ``concurrency`` and ``ongoing_requests`` become target
tracking on a custom CloudWatch metric the gateway publishes (namespace ``ebbtide``, dimensions EndpointName
and VariantName); ``predictive`` is refused (AAS predictive scaling does not cover SageMaker variants).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ebbtide.config import Config, PoolSpec
from ebbtide.export.sagemaker.cron import CronConversionError, to_aas

__all__ = [
    "AAS_DEFAULT_COOLDOWN_S",
    "CUSTOM_METRICS",
    "DIMENSION",
    "METRIC_NAMESPACE",
    "NAMESPACE",
    "AasPlan",
    "PlanError",
    "PolicyContext",
    "build_plan",
    "resource_id",
]

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
PREDEFINED_METRIC = "SageMakerVariantInvocationsPerInstance"
METRIC_NAMESPACE = "ebbtide"
AAS_DEFAULT_COOLDOWN_S = 300
POLICY_PREFIX = "ebbtide-"
CUSTOM_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "queue_depth": ("QueueDepthPerInstance", ("target",)),
    "concurrency": ("InFlightPerInstance", ("target_per_replica", "target", "target_concurrency")),
    "ongoing_requests": (
        "OngoingRequestsPerInstance",
        ("target_per_replica", "target", "target_ongoing_requests"),
    ),
}
_VARIANT_TIMEOUT_RANGE_S = (60, 3600)
_INVOKE_TIMEOUT_S = 60
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class PlanError(ValueError):
    """A config the export cannot express; the message names the field and what to do."""


@dataclass(frozen=True)
class AasPlan:
    pool: str
    endpoint: str
    variant: str
    scalable_target: dict[str, Any]
    policies: list[dict[str, Any]]
    alarms: list[dict[str, Any]]
    scheduled_actions: list[dict[str, Any]]
    container_env: dict[str, str]
    production_variant: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def resource_id(self) -> str:
        return resource_id(self.endpoint, self.variant)

    def document(self) -> dict[str, Any]:
        """The JSON document ``export --json`` prints: API name → arguments, in the order to call them."""
        return {
            "pool": self.pool,
            "ResourceId": self.resource_id,
            "RegisterScalableTarget": self.scalable_target,
            "PutScalingPolicy": self.policies,
            "PutMetricAlarm": self.alarms,
            "PutScheduledAction": self.scheduled_actions,
            "ProductionVariant": self.production_variant,
            "ContainerEnvironment": self.container_env,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class PolicyContext:
    """What exporting each of a pool's policies needs: the scalable target's keys (``base``), the endpoint and
    variant (alarm names, metric dimensions), the (out, in) cooldowns in seconds, and the plan's warnings."""

    base: dict[str, Any]
    endpoint: str
    variant: str
    cooldowns: tuple[int, int]
    warnings: list[str]

    @property
    def dimensions(self) -> list[dict[str, str]]:
        """CloudWatch dimensions of the variant's metrics."""
        return [{"Name": "EndpointName", "Value": self.endpoint}, {"Name": "VariantName", "Value": self.variant}]

    def policy(self, name: str, policy_type: str, config: dict[str, Any]) -> dict[str, Any]:
        """PutScalingPolicy arguments; AAS names the configuration key after the type (``StepScaling`` →
        ``StepScalingPolicyConfiguration``)."""
        return {"PolicyName": name, **self.base, "PolicyType": policy_type, f"{policy_type}PolicyConfiguration": config}


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def endpoint_name_for(pool: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9]+", "-", pool).strip("-")[:63]
    return name or "ebbtide"


def build_plan(
    cfg: Config,
    pool: PoolSpec,
    endpoint: str | None = None,
    variant: str = "AllTraffic",
    *,
    where: str = "config",
    skip_unsupported: bool = False,
) -> AasPlan:
    warnings: list[str] = []
    if endpoint is None:
        endpoint = endpoint_name_for(pool.name)
        warnings.append(f"no --endpoint given: using {endpoint!r} from the pool name")
    for label, value in (("endpoint", endpoint), ("variant", variant)):
        if not _NAME.match(value):
            raise PlanError(f"--{label} = {value!r}: SageMaker names are letters, digits and '-', up to 63")
    rid = resource_id(endpoint, variant)
    warnings.append(
        f"ResourceId {rid} must name an existing endpoint and production variant: RegisterScalableTarget "
        "accepts any id and then nothing ever scales. `ebbtide apply sagemaker` checks it with "
        "DescribeEndpoint."
    )
    s = pool.scaling
    base = {"ServiceNamespace": NAMESPACE, "ResourceId": rid, "ScalableDimension": DIMENSION}
    target = {**base, "MinCapacity": s.min_replicas, "MaxCapacity": s.max_replicas}
    if s.min_replicas == 0:
        warnings.append(
            "min_replicas = 0: SageMaker scales a variant to zero only on endpoints that use inference "
            "components; a plain production variant needs MinCapacity >= 1"
        )
    cooldown_out, cooldown_in = round(s.scale_out_cooldown_s), round(s.scale_in_cooldown_s)
    unset = [f for f in ("scale_out_cooldown_s", "scale_in_cooldown_s") if f not in s.model_fields_set]
    if unset:
        warnings.append(
            f"{where}: pools[{pool.name}].scaling.{'/'.join(unset)} not set: exporting ebbtide's defaults "
            f"({cooldown_out} s out / {cooldown_in} s in) explicitly; AAS would use "
            f"{AAS_DEFAULT_COOLDOWN_S} s "
            "for an omitted cooldown"
        )
    ctx = PolicyContext(base, endpoint, variant, (cooldown_out, cooldown_in), warnings)
    policies: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    for index, spec in enumerate(s.policies):
        path = f"{where}: pools[{pool.name}].scaling.policies[{index}] ({spec.kind})"
        try:
            _add_policy(spec, index, path, ctx, policies, alarms, actions)
        except PlanError:
            if not skip_unsupported:
                raise
            warnings.append(f"{path}: skipped (--skip-unsupported)")
    if not any(p["PolicyType"] == "TargetTrackingScaling" for p in policies) and not alarms:
        warnings.append("no scaling policy exported: the variant will only move with scheduled actions")
    startup = math.ceil(pool.replica.startup_timeout_s)
    clamped = min(max(startup, _VARIANT_TIMEOUT_RANGE_S[0]), _VARIANT_TIMEOUT_RANGE_S[1])
    if clamped != startup:
        warnings.append(
            f"{where}: pools[{pool.name}].replica.startup_timeout_s = {pool.replica.startup_timeout_s:g}: "
            f"SageMaker allows 60-3600 s for the variant's timeouts; using {clamped}"
        )
    request_timeout = math.ceil(cfg.gateway.request_timeout_s)
    if request_timeout > _INVOKE_TIMEOUT_S:
        warnings.append(
            f"gateway.request_timeout_s = {cfg.gateway.request_timeout_s:g}: InvokeEndpoint stops waiting "
            "after "
            f"{_INVOKE_TIMEOUT_S} s whatever the container allows; stream long generations "
            "(InvokeEndpointWithResponseStream)"
        )
    variant_fragment = {
        "VariantName": variant,
        "ModelDataDownloadTimeoutInSeconds": clamped,
        "ContainerStartupHealthCheckTimeoutInSeconds": clamped,
    }
    env = {
        "MODEL_LOAD_TIMEOUT": str(startup),
        "OPTION_MODEL_LOADING_TIMEOUT": str(startup),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(request_timeout),
        "SAGEMAKER_TS_RESPONSE_TIMEOUT": str(request_timeout),
    }
    return AasPlan(
        pool.name, endpoint, variant, target, policies, alarms, actions, env, variant_fragment, warnings
    )


def _add_policy(
    spec: Any,
    index: int,
    path: str,
    ctx: PolicyContext,
    policies: list[dict[str, Any]],
    alarms: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> None:
    kind: str = spec.kind
    if kind == "target_tracking":
        policies.append(_target_tracking(spec, path, ctx))
    elif kind == "schedule":
        _schedule(spec, index, path, ctx.base, actions)
    elif kind == "step":
        from ebbtide.export.sagemaker.step import step_policies

        for policy, alarm in step_policies(spec, index, path, ctx):
            policies.append(policy)
            alarms.append(alarm)
    elif kind in CUSTOM_METRICS:
        policies.append(_custom_metric(spec, path, ctx))
    elif kind == "predictive":
        raise PlanError(
            f"{path}: no AAS equivalent for a SageMaker variant (AAS predictive scaling does not cover "
            "SageMaker); replace it with schedule actions sized by `ebbtide plan`, or pass --skip-unsupported"
        )
    else:
        raise PlanError(f"{path}: policy kind {kind!r} has no SageMaker mapping; pass --skip-unsupported")


def _target_tracking_policy(name: str, ctx: PolicyContext, target: float, metric: dict[str, Any]) -> dict[str, Any]:
    """A TargetTrackingScaling policy on ``metric`` (its Predefined/CustomizedMetricSpecification)."""
    config = {
        "TargetValue": target,
        **metric,
        "ScaleOutCooldown": ctx.cooldowns[0],
        "ScaleInCooldown": ctx.cooldowns[1],
    }
    return ctx.policy(name, "TargetTrackingScaling", config)


def _target_tracking(spec: Any, path: str, ctx: PolicyContext) -> dict[str, Any]:
    tgt = float(spec.target)
    if tgt < 60:
        ctx.warnings.append(
            f"{path}: target = {tgt:g} is invocations per instance per MINUTE ({tgt / 60:.2f} req/s); if you "
            f"meant {tgt:g} req/s per instance, the target is {tgt * 60:g}"
        )
    if (spec.scale_out_datapoints, spec.scale_in_datapoints, spec.scale_in_ratio) != (3, 15, 0.9):
        ctx.warnings.append(
            f"{path}: AAS target tracking alarms are fixed (3 datapoints out, 15 in, 90% of target); the "
            "configured datapoints/ratio apply only in ebbtide and the twin"
        )
    metric = {"PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED_METRIC}}
    return _target_tracking_policy(f"{POLICY_PREFIX}target-tracking", ctx, tgt, metric)


def _custom_metric(spec: Any, path: str, ctx: PolicyContext) -> dict[str, Any]:
    metric, fields = CUSTOM_METRICS[spec.kind]
    value = next((getattr(spec, f) for f in fields if getattr(spec, f, None) is not None), None)
    if value is None:
        raise PlanError(f"{path}: no target field ({' / '.join(fields)}) to track; pass --skip-unsupported")
    ctx.warnings.append(
        f"{path}: mapped to target tracking on the custom metric {METRIC_NAMESPACE}/{metric} (Average, 60 "
        "s), "
        "which the ebbtide gateway must publish to CloudWatch; with no data the alarms stay "
        "INSUFFICIENT_DATA "
        "and never scale. AAS alarm timing (3 min out / 15 min in) replaces the policy's own windows."
    )
    custom = {
        "CustomizedMetricSpecification": {
            "MetricName": metric,
            "Namespace": METRIC_NAMESPACE,
            "Dimensions": ctx.dimensions,
            "Statistic": "Average",
            "Unit": "Count",
        }
    }
    return _target_tracking_policy(f"{POLICY_PREFIX}{spec.kind.replace('_', '-')}", ctx, float(value), custom)


def _schedule(spec: Any, index: int, path: str, base: dict[str, Any], actions: list[dict[str, Any]]) -> None:
    for j, action in enumerate(spec.actions):
        try:
            schedule = to_aas(action.cron)
        except CronConversionError as exc:
            raise PlanError(f"{path}.actions[{j}]: {exc}") from None
        bounds = {
            k: v
            for k, v in (("MinCapacity", action.min_replicas), ("MaxCapacity", action.max_replicas))
            if v is not None
        }
        name = re.sub(r"[:/|]", "-", action.name) if action.name else f"{POLICY_PREFIX}schedule-{index}-{j}"
        actions.append(
            {
                **base,
                "ScheduledActionName": name,
                "Schedule": schedule,
                "Timezone": spec.tz,
                "ScalableTargetAction": bounds,
            }
        )
