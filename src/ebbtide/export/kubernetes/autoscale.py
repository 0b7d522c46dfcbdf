"""A pool's scaling as a Kubernetes HPA (autoscaling/v2) or a KEDA ScaledObject.

Metrics come from the ebbtide gateway through Prometheus: ``ebbtide_queue_depth{pool}`` (queue_depth),
``ebbtide_requests_per_minute`` (target_tracking, a Prometheus-adapter rule over ``ebbtide_requests_total``)
and ``ebbtide_inflight`` (concurrency, ongoing_requests); each is an External metric with an AverageValue
target, so the HPA divides the pool's total by its pods as ebbtide's policies do. HPA has no cooldowns:
scale-up may at most double (or add 4 pods) per scale-out cooldown; scale-down removes one pod per scale-in
cooldown after the stabilization window (the queue_depth policy's, default 300 s). Schedule actions become
KEDA cron triggers (``start`` = the action's cron, ``end`` = the next action's); an HPA cannot follow them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from ebbtide.config import PoolSpec

__all__ = ["EXTERNAL_METRICS", "adapter_rules", "cron_windows", "hpa", "scaled_object"]

EXTERNAL_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "queue_depth": ("ebbtide_queue_depth", ("target",)),
    "target_tracking": ("ebbtide_requests_per_minute", ("target",)),
    "concurrency": ("ebbtide_inflight", ("target_per_replica", "target", "target_concurrency")),
    "ongoing_requests": ("ebbtide_inflight", ("target_per_replica", "target", "target_ongoing_requests")),
}
_QUERIES = {
    "ebbtide_queue_depth": 'sum(ebbtide_queue_depth{{pool="{pool}"}})',
    "ebbtide_requests_per_minute": 'sum(rate(ebbtide_requests_total{{pool="{pool}"}}[2m])) * 60',
    "ebbtide_inflight": 'sum(ebbtide_inflight{{pool="{pool}"}})',
}
_REFERENCE_WEEK = datetime(2028, 1, 3)


def metric_targets(pool: PoolSpec, warnings: list[str], where: str) -> list[tuple[str, float]]:
    """``[(external metric, average value per pod)]`` for the pool's policies; the rest are warned about."""
    out: list[tuple[str, float]] = []
    for index, spec in enumerate(pool.scaling.policies):
        path = f"{where}: pools[{pool.name}].scaling.policies[{index}] ({spec.kind})"
        if spec.kind == "schedule":
            continue
        mapped = EXTERNAL_METRICS.get(spec.kind)
        value = None
        if mapped is not None:
            value = next((getattr(spec, f) for f in mapped[1] if getattr(spec, f, None) is not None), None)
        if mapped is None or value is None:
            warnings.append(f"{path}: no HPA/KEDA equivalent; left out of the autoscaler")
            continue
        if spec.kind in ("concurrency", "ongoing_requests"):
            warnings.append(f"{path}: exported as an HPA average on ebbtide_inflight; panic mode is not kept")
        out.append((mapped[0], float(value)))
    return out


def behavior(pool: PoolSpec) -> dict[str, Any]:
    s = pool.scaling
    window = next((p.scale_down_stabilization_s for p in s.policies if p.kind == "queue_depth"), 300.0)
    out_period = min(max(round(s.scale_out_cooldown_s), 1), 1800)
    in_period = min(max(round(s.scale_in_cooldown_s), 1), 1800)
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": out_period},
                {"type": "Pods", "value": 4, "periodSeconds": out_period},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": min(round(window), 3600),
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": in_period}],
        },
    }


def hpa(
    pool: PoolSpec, name: str, meta: dict[str, Any], warnings: list[str], where: str
) -> dict[str, Any] | None:
    targets = metric_targets(pool, warnings, where)
    if any(p.kind == "schedule" for p in pool.scaling.policies):
        warnings.append(
            f"{where}: pools[{pool.name}]: an HPA cannot follow schedule actions; use --autoscaler keda "
            "(cron triggers) or a CronJob that patches minReplicas"
        )
    if not targets:
        warnings.append(f"{where}: pools[{pool.name}]: no metric policy to scale on; no HPA written")
        return None
    metrics = [
        {
            "type": "External",
            "external": {
                "metric": {"name": metric, "selector": {"matchLabels": {"pool": pool.name}}},
                "target": {"type": "AverageValue", "averageValue": _quantity(value)},
            },
        }
        for metric, value in targets
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": max(pool.scaling.min_replicas, 1),
            "maxReplicas": pool.scaling.max_replicas,
            "metrics": metrics,
            "behavior": behavior(pool),
        },
    }


def scaled_object(
    pool: PoolSpec, name: str, meta: dict[str, Any], prometheus_url: str, warnings: list[str], where: str
) -> dict[str, Any]:
    triggers: list[dict[str, Any]] = []
    for metric, value in metric_targets(pool, warnings, where):
        triggers.append(
            {
                "type": "prometheus",
                "name": metric.replace("_", "-"),
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": prometheus_url,
                    "query": _QUERIES[metric].format(pool=pool.name),
                    "threshold": _quantity(value),
                },
            }
        )
    for spec in (p for p in pool.scaling.policies if p.kind == "schedule"):
        for start, end, replicas in cron_windows(spec, pool.scaling.min_replicas, warnings, where, pool.name):
            triggers.append(
                {
                    "type": "cron",
                    "metadata": {
                        "timezone": spec.tz,
                        "start": start,
                        "end": end,
                        "desiredReplicas": str(replicas),
                    },
                }
            )
    if not triggers:
        warnings.append(f"{where}: pools[{pool.name}]: no trigger; the ScaledObject holds minReplicaCount")
        triggers.append({"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}})
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "pollingInterval": 15,
            "cooldownPeriod": max(round(pool.scaling.scale_in_cooldown_s), 1),
            "minReplicaCount": pool.scaling.min_replicas,
            "maxReplicaCount": pool.scaling.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(pool)}},
            "triggers": triggers,
        },
    }


def cron_windows(
    spec: Any, base_min: int, warnings: list[str], where: str, pool: str
) -> list[tuple[str, str, int]]:
    """``[(start cron, end cron, replicas)]``: each action that raises the floor, until the next one fires."""
    tz = ZoneInfo(spec.tz)
    start_ref = _REFERENCE_WEEK.replace(tzinfo=tz)
    firsts = [croniter(a.cron, start_ref).get_next(datetime) for a in spec.actions]
    windows: list[tuple[str, str, int]] = []
    for i, action in enumerate(spec.actions):
        if action.max_replicas is not None:
            warnings.append(
                f"{where}: pools[{pool}] schedule action {action.label!r}: max_replicas "
                f"{action.max_replicas} "
                "is not enforced by KEDA (maxReplicaCount is static)"
            )
        if action.min_replicas is None or action.min_replicas <= base_min:
            continue
        others = [
            (croniter(b.cron, firsts[i]).get_next(datetime), j) for j, b in enumerate(spec.actions) if j != i
        ]
        if not others:
            warnings.append(
                f"{where}: pools[{pool}] schedule action {action.label!r} never ends; raise min instead"
            )
            continue
        _, nxt = min(others)
        windows.append((action.cron, spec.actions[nxt].cron, action.min_replicas))
    return windows


def adapter_rules(pools: list[PoolSpec]) -> dict[str, Any]:
    """prometheus-adapter ``rules.external`` (Helm values) serving the External metrics the HPAs read."""
    rules = [
        {
            "seriesQuery": "ebbtide_queue_depth",
            "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
            "name": {"as": "ebbtide_queue_depth"},
            "metricsQuery": "sum(ebbtide_queue_depth{<<.LabelMatchers>>}) by (pool)",
        },
        {
            "seriesQuery": "ebbtide_requests_total",
            "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
            "name": {"as": "ebbtide_requests_per_minute"},
            "metricsQuery": "sum(rate(ebbtide_requests_total{<<.LabelMatchers>>}[2m])) by (pool) * 60",
        },
        {
            "seriesQuery": "ebbtide_inflight",
            "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
            "name": {"as": "ebbtide_inflight"},
            "metricsQuery": "sum(ebbtide_inflight{<<.LabelMatchers>>}) by (pool)",
        },
    ]
    return {"rules": {"external": rules}, "ebbtidePools": [p.name for p in pools]}


def _quantity(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{round(value * 1000)}m"
