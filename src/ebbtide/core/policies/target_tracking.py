"""``target_tracking``: Application Auto Scaling target tracking, as SageMaker endpoints use it.

Metric: invocations per ready replica per **minute** (SageMakerVariantInvocationsPerInstance). The policy closes one
datapoint per minute of policy time. Scale out when the last ``scale_out_datapoints`` (3) datapoints are all above
``target``; scale in when the last ``scale_in_datapoints`` (15) are all below ``scale_in_ratio`` (0.9) × target.
Either way desired = ceil(ready × metric / target) = ceil(invocations in the minute / target). In between the policy
holds the current capacity, which also means "not ready to scale in" when combined with other policies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ebbtide.core.policies.base import PolicySpec, Recommendation
from ebbtide.core.signals import PoolSignals

__all__ = ["TargetTrackingPolicy", "TargetTrackingSpec", "TargetTrackingState"]

MINUTE_S = 60.0


class TargetTrackingSpec(PolicySpec):
    kind: Literal["target_tracking"] = "target_tracking"
    metric: Literal["invocations_per_replica_per_minute"] = Field(
        "invocations_per_replica_per_minute", description="Per minute, not per second (the seed's trap)."
    )
    target: float = Field(gt=0, description="Target value of the metric, e.g. 600 = 10 requests/s per replica.")
    scale_out_datapoints: int = Field(3, ge=1, description="Consecutive 1-minute datapoints above target.")
    scale_in_datapoints: int = Field(15, ge=1, description="Consecutive 1-minute datapoints below the in-ratio.")
    scale_in_ratio: float = Field(0.9, gt=0, le=1, description="Scale-in alarm threshold as a fraction of target.")

    def build(self) -> TargetTrackingPolicy:
        return TargetTrackingPolicy(self)


@dataclass(frozen=True, slots=True)
class TargetTrackingState:
    minute_start_s: float | None = None
    arrivals_at_minute_start: int = 0
    ready_sum: float = 0.0
    ready_samples: int = 0
    datapoints: tuple[float, ...] = ()
    last_invocations: float = 0.0


class TargetTrackingPolicy:
    def __init__(self, spec: TargetTrackingSpec) -> None:
        self.spec = spec
        self.name = "target_tracking"

    def initial_state(self) -> TargetTrackingState:
        return TargetTrackingState()

    def decide(
        self, signals: PoolSignals, state: TargetTrackingState, now_s: float
    ) -> tuple[Recommendation, TargetTrackingState]:
        state = self._observe(signals, state, now_s)
        return self._evaluate(signals, state), state

    def _observe(self, signals: PoolSignals, state: TargetTrackingState, now_s: float) -> TargetTrackingState:
        if state.minute_start_s is None:
            return TargetTrackingState(
                minute_start_s=math.floor(now_s / MINUTE_S) * MINUTE_S,
                arrivals_at_minute_start=signals.arrivals_total,
                ready_sum=signals.ready,
                ready_samples=1,
            )
        minutes = int((now_s - state.minute_start_s) // MINUTE_S)
        if minutes < 1:
            return TargetTrackingState(
                state.minute_start_s,
                state.arrivals_at_minute_start,
                state.ready_sum + signals.ready,
                state.ready_samples + 1,
                state.datapoints,
                state.last_invocations,
            )
        invocations = (signals.arrivals_total - state.arrivals_at_minute_start) / minutes
        mean_ready = state.ready_sum / max(state.ready_samples, 1)
        per_replica = invocations / max(mean_ready, 1.0)
        keep = max(self.spec.scale_out_datapoints, self.spec.scale_in_datapoints)
        datapoints = (*state.datapoints, *([per_replica] * min(minutes, keep)))[-keep:]
        return TargetTrackingState(
            minute_start_s=state.minute_start_s + minutes * MINUTE_S,
            arrivals_at_minute_start=signals.arrivals_total,
            ready_sum=signals.ready,
            ready_samples=1,
            datapoints=datapoints,
            last_invocations=invocations,
        )

    def _evaluate(self, signals: PoolSignals, state: TargetTrackingState) -> Recommendation:
        spec, points = self.spec, state.datapoints
        if not points:
            return Recommendation(self.name, None, "no complete 1-minute datapoint yet")
        latest = points[-1]
        needed = math.ceil(state.last_invocations / spec.target - 1e-9)
        out_n, in_n = spec.scale_out_datapoints, spec.scale_in_datapoints
        if len(points) >= out_n and all(p > spec.target for p in points[-out_n:]):
            # The high alarm only adds capacity: with replicas starting, ``needed`` can be below capacity.
            return Recommendation(
                self.name,
                max(needed, signals.capacity, 1),
                f"saw {latest:.0f} invocations/replica/min > {spec.target:g} for {out_n} min",
            )
        threshold = spec.scale_in_ratio * spec.target
        if len(points) >= in_n and all(p < threshold for p in points[-in_n:]):
            # The low alarm only removes capacity.
            return Recommendation(
                self.name,
                min(needed, signals.capacity),
                f"saw {latest:.0f} invocations/replica/min < {threshold:g} for {in_n} min",
            )
        return Recommendation(
            self.name, signals.capacity, f"{latest:.0f} invocations/replica/min within alarm band: hold"
        )
