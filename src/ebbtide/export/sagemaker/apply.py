"""SageMaker provider: apply an :class:`AasPlan` to a live endpoint variant idempotently, with a diff first.

``apply_plan(clients, plan)`` checks the endpoint and variant exist (DescribeEndpoint; AAS itself accepts
a ResourceId that names nothing, and then nothing ever scales), reads the live scalable target, policies,
alarms and scheduled actions, and calls only what differs. Declarative: policies and scheduled actions on the
variant that the plan does not contain are deleted (the diff shows them first). Endpoint-config timeouts are
reported, not changed: that needs a new endpoint config and UpdateEndpoint, which redeploys the endpoint.

boto3 is imported only in :func:`connect` (``pip install 'ebbtide[aws]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ebbtide.export.sagemaker.plan import DIMENSION, NAMESPACE, POLICY_PREFIX, AasPlan

__all__ = ["AwsClients", "Change", "SageMakerError", "apply_plan", "connect", "diff_plan", "verify_variant"]


class SageMakerError(Exception):
    """A problem with the live endpoint or AWS, phrased for the user."""


@dataclass
class AwsClients:
    sagemaker: Any
    aas: Any
    cloudwatch: Any


@dataclass(frozen=True)
class Change:
    op: str
    name: str
    detail: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        sign = "-" if self.op.startswith("delete") else ("~" if "update" in self.detail else "+")
        return f"{sign} {self.op} {self.name}: {self.detail}"


def connect(region: str | None = None) -> AwsClients:
    try:
        import boto3
    except ImportError:
        raise SageMakerError(
            "boto3 is not installed: install the AWS extra, pip install 'ebbtide[aws]'"
        ) from None
    session = boto3.session.Session(region_name=region)
    return AwsClients(
        session.client("sagemaker"), session.client("application-autoscaling"), session.client("cloudwatch")
    )


def verify_variant(clients: AwsClients, endpoint: str, variant: str) -> dict[str, Any]:
    """DescribeEndpoint and find the variant; refuse, naming the ResourceId, when either is missing."""
    rid = f"endpoint/{endpoint}/variant/{variant}"
    try:
        described: dict[str, Any] = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    except Exception as exc:
        raise SageMakerError(
            f"ResourceId {rid}: endpoint {endpoint!r} not found ({_aws_message(exc)}). Registering it anyway "
            "would succeed silently and nothing would ever scale; check --endpoint and --region."
        ) from None
    names = [v["VariantName"] for v in described.get("ProductionVariants", [])]
    if variant not in names:
        raise SageMakerError(
            f"ResourceId {rid}: endpoint {endpoint!r} has no production variant {variant!r} "
            f"(it has {', '.join(names) or 'none'}); registering it would never scale anything"
        )
    return described


@dataclass(frozen=True)
class Live:
    target: dict[str, Any] | None
    policies: dict[str, dict[str, Any]]
    alarms: dict[str, dict[str, Any]]
    actions: dict[str, dict[str, Any]]


def read_live(clients: AwsClients, rid: str, alarm_names: list[str]) -> Live:
    base = {"ServiceNamespace": NAMESPACE}
    targets = clients.aas.describe_scalable_targets(**base, ResourceIds=[rid], ScalableDimension=DIMENSION)
    found = [t for t in targets.get("ScalableTargets", []) if t["ScalableDimension"] == DIMENSION]
    policies = _paged(clients.aas, "describe_scaling_policies", "ScalingPolicies", **base, ResourceId=rid)
    actions = _paged(clients.aas, "describe_scheduled_actions", "ScheduledActions", **base, ResourceId=rid)
    alarms: list[dict[str, Any]] = []
    if alarm_names:
        alarms = clients.cloudwatch.describe_alarms(AlarmNames=alarm_names).get("MetricAlarms", [])
    return Live(
        found[0] if found else None,
        {p["PolicyName"]: p for p in policies if p.get("ScalableDimension", DIMENSION) == DIMENSION},
        {a["AlarmName"]: a for a in alarms},
        {a["ScheduledActionName"]: a for a in actions if a.get("ScalableDimension", DIMENSION) == DIMENSION},
    )


def _paged(client: Any, method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = getattr(client, method)(**kwargs, **({"NextToken": token} if token else {}))
        items.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return items


def diff_plan(plan: AasPlan, live: Live) -> list[Change]:
    changes: list[Change] = []
    want = plan.scalable_target
    if live.target is None:
        changes.append(
            Change("register", plan.resource_id, f"min {want['MinCapacity']} max {want['MaxCapacity']}", want)
        )
    elif (live.target["MinCapacity"], live.target["MaxCapacity"]) != (
        want["MinCapacity"],
        want["MaxCapacity"],
    ):
        was = f"min {live.target['MinCapacity']} max {live.target['MaxCapacity']}"
        detail = f"update {was} → min {want['MinCapacity']} max {want['MaxCapacity']}"
        changes.append(Change("register", plan.resource_id, detail, want))
    config_key = {"TargetTrackingScaling": "TargetTrackingScalingPolicyConfiguration"}
    for policy in plan.policies:
        key = config_key.get(policy["PolicyType"], "StepScalingPolicyConfiguration")
        current = live.policies.get(policy["PolicyName"])
        if current is None:
            changes.append(Change("put_policy", policy["PolicyName"], f"new {policy['PolicyType']}", policy))
        elif current["PolicyType"] != policy["PolicyType"] or not _same(policy[key], current.get(key, {})):
            changes.append(
                Change("put_policy", policy["PolicyName"], f"update {policy['PolicyType']}", policy)
            )
    wanted_policies = {p["PolicyName"] for p in plan.policies}
    for name in sorted(set(live.policies) - wanted_policies):
        changes.append(Change("delete_policy", name, "not in the config", _policy_key(live.policies[name])))
    for entry in plan.alarms:
        alarm = entry["Alarm"]
        current = live.alarms.get(alarm["AlarmName"])
        policy_changed = any(c.op == "put_policy" and c.name == entry["PolicyName"] for c in changes)
        if current is None or policy_changed or not _same(alarm, current):
            detail = "new alarm" if current is None else "update alarm"
            changes.append(Change("put_alarm", alarm["AlarmName"], detail, entry))
    for action in plan.scheduled_actions:
        name = action["ScheduledActionName"]
        current = live.actions.get(name)
        keys = ("Schedule", "Timezone", "ScalableTargetAction")
        summary = f"{action['Schedule']} {action['Timezone']} {action['ScalableTargetAction']}"
        if current is None:
            changes.append(Change("put_scheduled_action", name, f"new {summary}", action))
        elif any(not _same(action[k], current.get(k)) for k in keys):
            changes.append(Change("put_scheduled_action", name, f"update → {summary}", action))
    wanted_actions = {a["ScheduledActionName"] for a in plan.scheduled_actions}
    for name in sorted(set(live.actions) - wanted_actions):
        ident = {
            "ServiceNamespace": NAMESPACE,
            "ResourceId": plan.resource_id,
            "ScalableDimension": DIMENSION,
        }
        changes.append(Change("delete_scheduled_action", name, "not in the config", ident))
    return changes


def _policy_key(policy: dict[str, Any]) -> dict[str, Any]:
    return {k: policy[k] for k in ("PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension")}


def _same(want: Any, have: Any) -> bool:
    """``want`` equals the live value, ignoring keys AWS adds that the plan does not set."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_same(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(_same(a, b) for a, b in zip(want, have, strict=True))
        )
    if isinstance(want, int | float) and isinstance(have, int | float) and not isinstance(want, bool):
        return float(want) == float(have)
    return bool(want == have)


@dataclass(frozen=True)
class ApplyResult:
    changes: list[Change]
    notes: list[str]
    calls: int


def apply_plan(clients: AwsClients, plan: AasPlan, *, dry_run: bool = False) -> ApplyResult:
    described = verify_variant(clients, plan.endpoint, plan.variant)
    notes = _endpoint_notes(clients, described, plan)
    alarm_names = [a["Alarm"]["AlarmName"] for a in plan.alarms]
    stale_alarms = _stale_alarms(clients, plan, alarm_names)
    live = read_live(clients, plan.resource_id, alarm_names)
    changes = diff_plan(plan, live)
    changes += [Change("delete_alarm", name, "no longer in the config") for name in stale_alarms]
    if dry_run or not changes:
        return ApplyResult(changes, notes, 0)
    calls = 0
    arns: dict[str, str] = {}
    order = (
        "register",
        "put_policy",
        "put_alarm",
        "put_scheduled_action",
        "delete_scheduled_action",
        "delete_policy",
        "delete_alarm",
    )
    for op in order:
        for change in (c for c in changes if c.op == op):
            calls += 1
            if op == "register":
                clients.aas.register_scalable_target(**change.kwargs)
            elif op == "put_policy":
                arns[change.name] = clients.aas.put_scaling_policy(**change.kwargs)["PolicyARN"]
            elif op == "put_alarm":
                arn = (
                    arns.get(change.kwargs["PolicyName"])
                    or live.policies[change.kwargs["PolicyName"]]["PolicyARN"]
                )
                clients.cloudwatch.put_metric_alarm(**change.kwargs["Alarm"], AlarmActions=[arn])
            elif op == "put_scheduled_action":
                clients.aas.put_scheduled_action(**change.kwargs)
            elif op == "delete_scheduled_action":
                clients.aas.delete_scheduled_action(**change.kwargs, ScheduledActionName=change.name)
            elif op == "delete_policy":
                clients.aas.delete_scaling_policy(**change.kwargs)
            else:
                clients.cloudwatch.delete_alarms(AlarmNames=[change.name])
    return ApplyResult(changes, notes, calls)


def _stale_alarms(clients: AwsClients, plan: AasPlan, wanted: list[str]) -> list[str]:
    prefix = f"{POLICY_PREFIX}{plan.endpoint}-{plan.variant}-step-"
    found = clients.cloudwatch.describe_alarms(AlarmNamePrefix=prefix).get("MetricAlarms", [])
    return sorted(a["AlarmName"] for a in found if a["AlarmName"] not in wanted)


def _endpoint_notes(clients: AwsClients, described: dict[str, Any], plan: AasPlan) -> list[str]:
    notes: list[str] = []
    status = described.get("EndpointStatus")
    if status and status != "InService":
        notes.append(f"endpoint {plan.endpoint!r} is {status}: AAS acts only on InService endpoints")
    try:
        config = clients.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
    except Exception as exc:
        return [*notes, f"could not read the endpoint config: {_aws_message(exc)}"]
    variant: dict[str, Any] = next(
        (v for v in config["ProductionVariants"] if v["VariantName"] == plan.variant), {}
    )
    for key in ("ModelDataDownloadTimeoutInSeconds", "ContainerStartupHealthCheckTimeoutInSeconds"):
        if variant.get(key) != plan.production_variant[key]:
            notes.append(
                f"endpoint config {described['EndpointConfigName']!r}: {key} = {variant.get(key)}, the "
                "config "
                f"wants {plan.production_variant[key]} (not changed here: create a new endpoint config and "
                "UpdateEndpoint, which redeploys)"
            )
    return notes


def _aws_message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return str(exc)
