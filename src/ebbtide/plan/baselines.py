"""The policies ``plan compare`` measures against the user's: each keeps the user's pool (engine, service and
cold-start models, price, bounds) and swaps only ``scaling.policies`` (and, for the seed's policy, its
cooldowns).

- ``flat at peak``: min = max = the pool's max_replicas all day, no policy.
- ``sagemaker (seed 000)``: target tracking 600 invocations/replica/min, cooldowns 60 s out / 180 s in,
  scheduled 08:45 MON-FRI min 2 max 5 and 19:00 min 1 max 3 (clamped to the pool's max).
- ``hpa queue depth 30``: seed 003's HPA on queue depth, averageValue 30.
- ``knative kpa``: KPA defaults with containerConcurrency = the engine's slots, so the target is Knative's
  default container-concurrency-target-percentage 70 % of it (an LLM server's slots are a hard limit).
- ``ray serve``: Ray Serve's default autoscaling (target_ongoing_requests 2, delays 30 s / 600 s).
- ``predictive``: capacity per replica = the throughput at the SLO, lead time = the cold-start model's p90,
  concurrency per replica = the batch at the SLO.
"""

from __future__ import annotations

import math

from ebbtide.config import PoolSpec
from ebbtide.core.policies.base import PolicySpec
from ebbtide.core.policies.concurrency import ConcurrencySpec
from ebbtide.core.policies.ongoing_requests import OngoingRequestsSpec
from ebbtide.core.policies.predictive import PredictiveSpec
from ebbtide.core.policies.queue_depth import QueueDepthSpec
from ebbtide.core.policies.schedule import ScheduleAction, ScheduleSpec
from ebbtide.core.policies.target_tracking import TargetTrackingSpec
from ebbtide.plan.runner import Variant

__all__ = ["KNATIVE_TARGET_PCT", "baselines", "predictive_spec", "with_policies", "with_predictive_lead"]

KNATIVE_TARGET_PCT = 0.70  # Knative container-concurrency-target-percentage default


def with_policies(pool: PoolSpec, policies: list[PolicySpec], **scaling: float | int) -> PoolSpec:
    new_scaling = pool.scaling.model_copy(update={"policies": policies, **scaling})
    return pool.model_copy(update={"scaling": new_scaling})


def predictive_spec(
    capacity_rps: float, lead_time_s: float, tz: str, concurrency: float | None = None
) -> PredictiveSpec:
    fields: dict[str, object] = {
        "capacity_per_replica_rps": round(capacity_rps, 2),
        "lead_time_s": round(lead_time_s),
        "tz": tz,
    }
    if concurrency is not None:
        fields["concurrency_per_replica"] = concurrency
    return PredictiveSpec.model_validate(fields)


def with_predictive_lead(pool: PoolSpec, lead_time_s: float, concurrency: float | None = None) -> PoolSpec:
    """The twin sets ``lead_time_s`` from its cold-start model, and ``concurrency_per_replica`` from its service
    model (the batch at the SLO), where the user left them unset."""

    def fill(p: PolicySpec) -> PolicySpec:
        if not isinstance(p, PredictiveSpec):
            return p
        update: dict[str, object] = {}
        if "lead_time_s" not in p.model_fields_set:
            update["lead_time_s"] = round(lead_time_s)
        if concurrency is not None and "concurrency_per_replica" not in p.model_fields_set:
            update["concurrency_per_replica"] = concurrency
        return p.model_copy(update=update)

    return with_policies(pool, [fill(p) for p in pool.scaling.policies])


def _sagemaker(pool: PoolSpec, tz: str) -> PoolSpec:
    hi = pool.scaling.max_replicas

    def action(name: str, cron: str, lo: int, top: int) -> ScheduleAction:
        top = min(top, hi)
        return ScheduleAction.model_validate(
            {"cron": cron, "min_replicas": min(lo, top), "max_replicas": top, "name": name}
        )

    actions = [
        action("morning-pre-warm", "45 8 * * MON-FRI", 2, 5),
        action("evening-drop", "0 19 * * *", 1, 3),
    ]
    schedule = ScheduleSpec.model_validate({"tz": tz, "actions": actions})
    return with_policies(
        pool,
        [TargetTrackingSpec.model_validate({"target": 600}), schedule],
        scale_out_cooldown_s=60.0,
        scale_in_cooldown_s=180.0,
    )


def _flat(pool: PoolSpec) -> PoolSpec:
    peak = pool.scaling.max_replicas
    flat = with_policies(pool, [], min_replicas=peak, max_replicas=peak)
    if flat.sim is not None and flat.sim.initial_replicas is not None:
        flat = flat.model_copy(update={"sim": flat.sim.model_copy(update={"initial_replicas": None})})
    return flat


def baselines(
    pool: PoolSpec, tz: str, capacity_rps: float, lead_time_s: float, concurrency: float | None = None
) -> list[Variant]:
    target = max(1.0, math.floor(KNATIVE_TARGET_PCT * pool.engine.slots))
    knative = ConcurrencySpec.model_validate({"target_per_replica": target})
    return [
        Variant("flat at peak", _flat(pool)),
        Variant("sagemaker (seed 000)", _sagemaker(pool, tz)),
        Variant("hpa queue depth 30", with_policies(pool, [QueueDepthSpec.model_validate({"target": 30})])),
        Variant(
            "knative kpa",
            with_policies(pool, [knative]),
        ),
        Variant("ray serve", with_policies(pool, [OngoingRequestsSpec.model_validate({})])),
        Variant("predictive", with_policies(pool, [predictive_spec(capacity_rps, lead_time_s, tz, concurrency)])),
    ]
