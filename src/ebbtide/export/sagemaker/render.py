"""An :class:`AasPlan` as text a person runs: boto3 Python and AWS CLI, call for call, in calling order."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from ebbtide.export.sagemaker.plan import AasPlan

__all__ = ["render_boto3", "render_cli"]


def render_boto3(plan: AasPlan, region: str | None = None) -> str:
    region_arg = f"region_name={region!r}" if region else ""
    lines = [
        "import boto3",
        "",
        f'aas = boto3.client("application-autoscaling"{", " + region_arg if region_arg else ""})',
    ]
    if plan.alarms:
        lines.append(f'cloudwatch = boto3.client("cloudwatch"{", " + region_arg if region_arg else ""})')
    lines += ["", _call("aas.register_scalable_target", plan.scalable_target)]
    alarm_for = {a["PolicyName"]: a["Alarm"] for a in plan.alarms}
    for policy in plan.policies:
        name = policy["PolicyName"]
        if name in alarm_for:
            lines.append(f"policy = {_call('aas.put_scaling_policy', policy)}")
            alarm = {**alarm_for[name], "AlarmActions": _Raw('[policy["PolicyARN"]]')}
            lines.append(_call("cloudwatch.put_metric_alarm", alarm))
        else:
            lines.append(_call("aas.put_scaling_policy", policy))
    lines += [_call("aas.put_scheduled_action", action) for action in plan.scheduled_actions]
    lines += [
        "",
        "# Endpoint config (create_endpoint_config + update_endpoint; changing it redeploys the endpoint):",
        f"# ProductionVariants=[{{..., {_kwargs_inline(plan.production_variant)}}}]",
        f"# Model container Environment={plan.container_env!r}",
    ]
    return "\n".join(lines) + "\n"


def render_cli(plan: AasPlan, region: str | None = None) -> str:
    region_flag = [f"--region {shlex.quote(region)}"] if region else []
    lines = [_cli("application-autoscaling register-scalable-target", plan.scalable_target, region_flag)]
    alarm_for = {a["PolicyName"]: a["Alarm"] for a in plan.alarms}
    for policy in plan.policies:
        name = policy["PolicyName"]
        if name in alarm_for:
            lines.append(
                "POLICY_ARN=$("
                + _cli("application-autoscaling put-scaling-policy", policy, region_flag)
                + " --query PolicyARN --output text)"
            )
            lines.append(
                _cli("cloudwatch put-metric-alarm", alarm_for[name], region_flag)
                + ' \\\n    --alarm-actions "$POLICY_ARN"'
            )
        else:
            lines.append(_cli("application-autoscaling put-scaling-policy", policy, region_flag))
    lines += [
        _cli("application-autoscaling put-scheduled-action", a, region_flag) for a in plan.scheduled_actions
    ]
    lines += [
        "# Endpoint config: add to the production variant, then update-endpoint (a redeploy):",
        f"#   {json.dumps(plan.production_variant)}",
        f"# Model container environment: {json.dumps(plan.container_env)}",
    ]
    return "\n".join(lines) + "\n"


class _Raw:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _call(function: str, kwargs: dict[str, Any]) -> str:
    args = ",\n".join(f"    {key}={_py(value)}" for key, value in kwargs.items())
    return f"{function}(\n{args},\n)"


def _py(value: Any) -> str:
    if isinstance(value, _Raw):
        return value.text
    return repr(value)


def _kwargs_inline(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{key!r}: {value!r}" for key, value in kwargs.items())


def _cli(command: str, kwargs: dict[str, Any], extra: list[str]) -> str:
    parts = [f"aws {command}"]
    for key, value in kwargs.items():
        flag = "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", key).lower()
        if isinstance(value, dict | list):
            parts.append(f"{flag} {shlex.quote(json.dumps(value, separators=(',', ':')))}")
        elif isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " \\\n    ".join(parts + extra)
