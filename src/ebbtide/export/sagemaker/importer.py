"""An existing SageMaker variant's Application Auto Scaling setup → ``ebbtide.yaml``, to replay in the twin.

Reads the scalable target, scaling policies (with the alarms of step policies) and scheduled actions; AAS cron
goes back to 5-field cron + tz (one ``schedule`` policy per Timezone). What has no ebbtide form (CPU/GPU
utilisation targets, ``rate()`` schedules, other CloudWatch metrics) is left out and listed in the notes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from ebbtide.config import Config
from ebbtide.core.policies import POLICY_SPECS
from ebbtide.export.sagemaker.apply import AwsClients, SageMakerError, read_live, verify_variant
from ebbtide.export.sagemaker.cron import CronConversionError, from_aas
from ebbtide.export.sagemaker.plan import (
    AAS_DEFAULT_COOLDOWN_S,
    CUSTOM_METRICS,
    METRIC_NAMESPACE,
    PREDEFINED_METRIC,
    resource_id,
)
from ebbtide.export.sagemaker.step import STEP_NAME, step_from_aas

__all__ = ["import_config", "import_yaml"]

_GENERATED_ACTION = re.compile(r"^ebbtide-schedule-\d+-\d+$")


def import_config(
    clients: AwsClients, endpoint: str, variant: str | None = None, pool: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``(config dict, notes)``; the dict validates as :class:`Config`."""
    described = clients.sagemaker.describe_endpoint(EndpointName=endpoint) if variant is None else None
    if described is not None:
        names = [v["VariantName"] for v in described.get("ProductionVariants", [])]
        if len(names) != 1:
            raise SageMakerError(f"endpoint {endpoint!r} has variants {names}: pass --variant")
        variant = names[0]
    assert variant is not None
    described = verify_variant(clients, endpoint, variant)
    rid = resource_id(endpoint, variant)
    alarms = {
        a["AlarmName"]: a
        for a in clients.cloudwatch.describe_alarms().get("MetricAlarms", [])
        if a["AlarmActions"]
    }
    live = read_live(clients, rid, [])
    if live.target is None:
        raise SageMakerError(
            f"ResourceId {rid}: no scalable target registered, so nothing scales it to import"
        )
    notes: list[str] = []
    policies, cooldowns = _policies(live.policies, alarms, notes)
    policies += _schedules(live.actions, notes)
    scaling: dict[str, Any] = {
        "min_replicas": int(live.target["MinCapacity"]),
        "max_replicas": int(live.target["MaxCapacity"]),
        "scale_out_cooldown_s": float(cooldowns[0]),
        "scale_in_cooldown_s": float(cooldowns[1]),
        "policies": policies,
    }
    pool_spec: dict[str, Any] = {
        "name": pool or endpoint,
        "engine": _engine(clients, described, variant, notes),
        "scaling": scaling,
    }
    startup = _startup_timeout(clients, described, variant)
    if startup is not None:
        pool_spec["replica"] = {"startup_timeout_s": float(startup)}
    doc = {"pools": [pool_spec]}
    Config.model_validate(doc)
    return doc, notes


def import_yaml(doc: dict[str, Any], notes: list[str], endpoint: str, variant: str | None) -> str:
    header = [
        f"# Imported from SageMaker endpoint {endpoint!r}" + (f" variant {variant!r}" if variant else "")
    ]
    header += [f"# note: {n}" for n in notes]
    return "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False)


def _policies(
    live: dict[str, dict[str, Any]], alarms: dict[str, dict[str, Any]], notes: list[str]
) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    out: list[dict[str, Any]] = []
    cooldowns: tuple[float, float] | None = None
    steps: dict[str, list[dict[str, Any]]] = {}
    alarm_by_policy = {
        p["PolicyName"]: a
        for a in alarms.values()
        for p in live.values()
        if p["PolicyARN"] in a["AlarmActions"]
    }
    for name in sorted(live):
        policy = live[name]
        if policy["PolicyType"] == "StepScaling":
            match = STEP_NAME.match(name)
            steps.setdefault(match.group(1) if match else name, []).append(policy)
            continue
        config = policy.get("TargetTrackingScalingPolicyConfiguration", {})
        spec = _target_tracking(name, config, notes)
        if spec is None:
            continue
        out.append(spec)
        pair = (
            float(config.get("ScaleOutCooldown", AAS_DEFAULT_COOLDOWN_S)),
            float(config.get("ScaleInCooldown", AAS_DEFAULT_COOLDOWN_S)),
        )
        if cooldowns is None:
            cooldowns = pair
        elif pair != cooldowns:
            notes.append(
                f"policy {name!r}: cooldowns {pair} differ from the first policy's {cooldowns}; kept those"
            )
    for key in sorted(steps, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k)):
        group = steps[key]
        try:
            out.append(step_from_aas(group, alarm_by_policy))
        except ValueError as exc:
            notes.append(f"step policy {group[0]['PolicyName']!r} left out: {exc}")
            continue
        if cooldowns is None:
            cooldowns = (
                float(group[0]["StepScalingPolicyConfiguration"].get("Cooldown", AAS_DEFAULT_COOLDOWN_S)),
            ) * 2
    if cooldowns is None:
        cooldowns = (float(AAS_DEFAULT_COOLDOWN_S), float(AAS_DEFAULT_COOLDOWN_S))
        notes.append(f"no policy sets cooldowns: using the AAS default {AAS_DEFAULT_COOLDOWN_S} s")
    return out, cooldowns


def _target_tracking(name: str, config: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    target = float(config.get("TargetValue", 0.0))
    predefined = config.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType")
    if predefined == PREDEFINED_METRIC:
        return {"kind": "target_tracking", "target": target}
    custom = config.get("CustomizedMetricSpecification", {})
    if custom.get("Namespace") == METRIC_NAMESPACE:
        for kind, (metric, fields) in CUSTOM_METRICS.items():
            if custom.get("MetricName") == metric and kind in POLICY_SPECS:
                return {"kind": kind, fields[0]: target}
    shown = predefined or f"{custom.get('Namespace')}/{custom.get('MetricName')}"
    notes.append(f"policy {name!r} tracks {shown}, which ebbtide does not model; left out")
    return None


def _schedules(actions: dict[str, dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
    by_tz: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(actions):
        action = actions[name]
        try:
            cron = from_aas(action["Schedule"])
        except CronConversionError as exc:
            notes.append(f"scheduled action {name!r} left out: {exc}")
            continue
        bounds = action.get("ScalableTargetAction", {})
        entry: dict[str, Any] = {"cron": cron}
        if "MinCapacity" in bounds:
            entry["min_replicas"] = int(bounds["MinCapacity"])
        if "MaxCapacity" in bounds:
            entry["max_replicas"] = int(bounds["MaxCapacity"])
        if len(entry) == 1:
            notes.append(f"scheduled action {name!r} sets no capacity; left out")
            continue
        if not _GENERATED_ACTION.match(name):
            entry["name"] = name
        if action.get("StartTime") or action.get("EndTime"):
            notes.append(
                f"scheduled action {name!r}: StartTime/EndTime dropped (ebbtide schedules have none)"
            )
        by_tz.setdefault(action.get("Timezone") or "UTC", []).append(entry)
    return [{"kind": "schedule", "tz": tz, "actions": entries} for tz, entries in by_tz.items()]


def _engine(clients: AwsClients, described: dict[str, Any], variant: str, notes: list[str]) -> dict[str, Any]:
    model = _variant_config(clients, described, variant).get("ModelName", "")
    try:
        container = clients.sagemaker.describe_model(ModelName=model).get("PrimaryContainer", {})
    except Exception:
        container = {}
    env = container.get("Environment", {})
    weights = env.get("HF_MODEL_ID") or env.get("OPTION_MODEL_ID") or model or "unknown"
    gpus = env.get("SM_NUM_GPUS") or env.get("OPTION_TENSOR_PARALLEL_DEGREE")
    engine: dict[str, Any] = {"kind": "vllm", "model": weights}
    if gpus and str(gpus).isdigit():
        engine["tensor_parallel"] = int(gpus)
    notes.append(f"engine guessed from the model {model!r} (vllm, {weights}); check it before serving")
    return engine


def _variant_config(clients: AwsClients, described: dict[str, Any], variant: str) -> dict[str, Any]:
    try:
        config = clients.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
    except Exception:
        return {}
    found: dict[str, Any] = next((v for v in config["ProductionVariants"] if v["VariantName"] == variant), {})
    return found


def _startup_timeout(clients: AwsClients, described: dict[str, Any], variant: str) -> float | None:
    value = _variant_config(clients, described, variant).get("ContainerStartupHealthCheckTimeoutInSeconds")
    return None if value is None or math.isnan(float(value)) else float(value)
