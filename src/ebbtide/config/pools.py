"""``pools[]``: one served model id each: its engine, replica lifecycle and price, scaling, variants, rollout,
fallback, placement and twin model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ebbtide.config.base import Spec as _Spec
from ebbtide.config.engines import EngineSpec, LlamaCppEngineSpec
from ebbtide.config.sim import SimSpec, VariantSimSpec
from ebbtide.core.cost import Price
from ebbtide.core.policies import AnyPolicySpec
from ebbtide.core.rollout import RolloutSpec
from ebbtide.core.standby import COLD, HOT, StandbySpec

__all__ = [
    "CandidateSpec",
    "PoolRolloutSpec",
    "PoolSpec",
    "RayPlacementSpec",
    "ReplicaSpec",
    "ScalingSpec",
    "SpotSpec",
    "StandbyTierSpec",
    "StandbyTiersSpec",
    "VariantSpec",
]


class SpotSpec(_Spec):
    hourly_usd: float = Field(ge=0, description="Spot price per replica-hour.")
    notice_s: float = Field(120.0, gt=0, description="Termination notice: time to drain before the replica dies.")
    min_on_demand: int = Field(
        0, ge=0, description="On-demand floor: this many serving replicas are on-demand, the rest spot."
    )


class StandbyTierSpec(_Spec):
    """What one replica kept in a standby tier costs, and how long waking it takes."""

    hourly_usd: float | None = Field(
        None, ge=0, description="Price of one standby replica-hour; unset = replica.hourly_usd (the instance is kept)."
    )
    wake_s: float = Field(
        gt=0, description="Promotion → ready (the twin uses it; the planner and the predictive policy choose by it)."
    )


def _hot_tier() -> StandbyTierSpec:
    # vLLM sleep mode level 1: wake 3-6 s vs 47-98 s reload (REFERENCES.md); the instance is still paid for.
    return StandbyTierSpec(hourly_usd=None, wake_s=4.5)


def _warm_tier() -> StandbyTierSpec:
    # A stopped instance with the weights on its local NVMe (an EC2 warm pool): only its disk is paid while
    # stopped (141 GB at ~$0.08/GB-month ≈ $0.02/h). Waking = instance start (assumed 30-90 s) + seed 003's
    # phases from local disk (NVMe 50-70% faster: 9-30 s, RAM→GPU 60-120 s, init 10-30 s): 109-270 s, mid 190
    # (plan/standby.py derives it for any model).
    return StandbyTierSpec(hourly_usd=0.02, wake_s=190.0)


class StandbyTiersSpec(_Spec):
    hot: StandbyTierSpec = Field(
        default_factory=_hot_tier,
        description="Engine loaded, then paused (llama.cpp: SIGSTOP; vLLM: sleep level 1). Default wake 4.5 s "
        "(vLLM sleep mode), price = replica.hourly_usd.",
    )
    warm: StandbyTierSpec = Field(
        default_factory=_warm_tier,
        description="Weights staged on the node's disk, no engine: waking starts it from local disk. Default wake "
        "190 s, $0.02/h (a stopped instance's disk: seed 003's 70B from local NVMe).",
    )

    def tier(self, name: str) -> StandbyTierSpec:
        return self.hot if name == HOT else self.warm


class ReplicaSpec(_Spec):
    startup_timeout_s: float = Field(600.0, gt=0, description="Model-load timeout: not ready by then → replaced.")
    health_interval_s: float = Field(2.0, gt=0, description="Seconds between health checks of ready replicas.")
    health_failures: int = Field(3, ge=1, description="Consecutive failed health checks before replacement.")
    drain_timeout_s: float = Field(120.0, ge=0, description="Scale-in: wait this long for in-flight requests.")
    stop_grace_s: float = Field(10.0, ge=0, description="SIGTERM → SIGKILL grace, seconds.")
    orphan_grace_s: float = Field(
        15.0, gt=0, description="A replica whose controller lease is not renewed this long stops itself."
    )
    cold_start_estimate_s: float | None = Field(None, gt=0, description="Used until cold starts are measured.")
    hourly_usd: float = Field(0.0, ge=0, description="Price of one replica-hour, for cost.")
    billing: Literal["per_second", "per_hour"] = Field("per_second", description="Billing granularity.")
    spot: SpotSpec | None = Field(None, description="Spot capacity: price and termination notice.")
    standby: StandbyTiersSpec = Field(
        default_factory=StandbyTiersSpec, description="Standby tiers: price and wake time of each (scaling.standby)."
    )


class ScalingSpec(_Spec):
    min_replicas: int = Field(1, ge=0, description="Static lower bound (0 = scale to zero when idle).")
    max_replicas: int = Field(3, ge=1, description="Static upper bound.")
    scale_out_cooldown_s: float = Field(60.0, ge=0, description="After a scale-out, only a larger one may follow.")
    scale_in_cooldown_s: float = Field(180.0, ge=0, description="Scale-in waits this long after any scaling.")
    scale_to_zero_after_s: float = Field(300.0, ge=0, description="With min 0: idle this long before going to 0.")
    tick_s: float = Field(1.0, gt=0, description="Controller period in policy seconds.")
    policies: list[AnyPolicySpec] = Field(
        default_factory=list, description="Scale out if any says out, in only if all agree (docs/policies.md)."
    )
    standby: StandbySpec = Field(
        default_factory=StandbySpec,
        description="Replicas kept started but not routed, woken by a scale-out before any cold start "
        "(a schedule action or the predictive policy may change it).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas = {self.max_replicas}: must be >= min_replicas = {self.min_replicas}")
        return self


class VariantSpec(_Spec):
    """Another shape of the same pool (e.g. a smaller quantised model overnight), chosen by a schedule action."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Named by `variant:`.")
    engine: EngineSpec | None = Field(None, description="What replicas of this variant run; unset = pool's engine.")
    hourly_usd: float | None = Field(None, ge=0, description="Price per replica-hour; unset = replica.hourly_usd.")
    sim: VariantSimSpec | None = Field(None, description="The twin's model of this variant; unset = the pool's.")


class CandidateSpec(_Spec):
    engine: EngineSpec | None = Field(None, description="What candidate replicas run; unset = the pool's engine.")
    hourly_usd: float | None = Field(None, ge=0, description="Price per candidate replica-hour.")
    sim: VariantSimSpec | None = Field(None, description="The twin's model of the candidate; unset = the pool's.")


class PoolRolloutSpec(RolloutSpec):
    candidate: CandidateSpec = Field(default_factory=CandidateSpec, description="The version being rolled out.")


class RayPlacementSpec(_Spec):
    """Where one replica of this pool may run on a Ray cluster (``provider.kind: ray`` only)."""

    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica (default llama.cpp threads).")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per replica; default engine.tensor_parallel for vllm, else 0."
    )
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom resources per replica (see `ray start --resources`)."
    )
    strategy: Literal["spread", "pack"] = Field(
        "spread", description="spread: replicas on different nodes when possible; pack: Ray's default."
    )

    @model_validator(mode="after")
    def _positive_resources(self) -> RayPlacementSpec:
        for name, amount in self.resources.items():
            if amount <= 0:
                raise ValueError(f"resources.{name} = {amount}: must be > 0")
        return self


class PoolSpec(_Spec):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$", description="Model id clients send.")
    engine: EngineSpec = Field(default_factory=LlamaCppEngineSpec, description="What each replica runs.")
    replica: ReplicaSpec = Field(default_factory=ReplicaSpec, description="Replica lifecycle and price.")
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Bounds, cooldowns, policies.")
    fallback: str | None = Field(None, description="Pool that takes overflow when this one would miss the SLO.")
    ray: RayPlacementSpec | None = Field(None, description="Per-replica Ray resources (provider kind ray).")
    fallback_classes: list[str] = Field(
        default_factory=lambda: ["interactive"], description="Priority classes allowed to overflow to `fallback`."
    )
    rollout: PoolRolloutSpec | None = Field(None, description="Shadow, canary or blue-green of a candidate.")
    variants: list[VariantSpec] = Field(
        default_factory=list, description="Vertical scaling: schedule actions pick one by `variant:`."
    )
    sim: SimSpec | None = Field(None, description="Digital-twin model of this pool (`ebbtide simulate` only).")

    def price(self, variant: str = "default", spot: bool = False, standby: str | None = None) -> Price:
        """One replica's price: its variant's (or the candidate's) hourly rate; a spot replica pays the spot rate,
        scaled by the variant's rate over the pool's (the spot discount carries over to other shapes); a parked
        standby replica pays its tier's rate instead."""
        if standby is not None and standby != COLD:
            tier = self.replica.standby.tier(standby).hourly_usd
            if tier is not None:
                return Price(tier, self.replica.billing)
        hourly = self.replica.hourly_usd
        if variant == "candidate" and self.rollout is not None and self.rollout.candidate.hourly_usd is not None:
            hourly = self.rollout.candidate.hourly_usd
        for v in self.variants:
            if v.name == variant and v.hourly_usd is not None:
                hourly = v.hourly_usd
        spot_usd = None
        if spot and self.replica.spot is not None:
            base = self.replica.hourly_usd
            spot_usd = self.replica.spot.hourly_usd * (hourly / base if base > 0 else 1.0)
        return Price(hourly, self.replica.billing, spot_usd)


