"""``queue_depth``: Kubernetes HPA on an average-value queue metric (seed 003's primary signal).

desired = ceil(current × (queue per replica / target)) = ceil(queue / target); no change while the ratio is within
``tolerance`` (0.1) of 1; scale-down uses the highest recommendation of the last ``scale_down_stabilization_s`` (300 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ebbtide.core.policies.base import PolicySpec, Recommendation
from ebbtide.core.signals import PoolSignals

__all__ = ["QueueDepthPolicy", "QueueDepthSpec", "QueueDepthState"]


class QueueDepthSpec(PolicySpec):
    kind: Literal["queue_depth"] = "queue_depth"
    target: float = Field(gt=0, description="Target requests waiting per replica (HPA averageValue).")
    tolerance: float = Field(0.1, ge=0, lt=1, description="No change while |ratio - 1| <= tolerance.")
    scale_down_stabilization_s: float = Field(300.0, ge=0, description="Max of recommendations over this window.")

    def build(self) -> QueueDepthPolicy:
        return QueueDepthPolicy(self)


@dataclass(frozen=True, slots=True)
class QueueDepthState:
    history: tuple[tuple[float, int], ...] = ()


class QueueDepthPolicy:
    def __init__(self, spec: QueueDepthSpec) -> None:
        self.spec = spec
        self.name = "queue_depth"

    def initial_state(self) -> QueueDepthState:
        return QueueDepthState()

    def decide(
        self, signals: PoolSignals, state: QueueDepthState, now_s: float
    ) -> tuple[Recommendation, QueueDepthState]:
        spec, current, queue = self.spec, signals.capacity, signals.queue_depth
        if current == 0:
            raw = math.ceil(queue / spec.target)
            reason = f"queue {queue} at zero replicas"
        else:
            ratio = (queue / current) / spec.target
            # Exactly 10% off counts as within tolerance, whatever the float rounding of the ratio.
            if abs(ratio - 1.0) <= spec.tolerance + 1e-9:
                raw, reason = current, f"queue {queue}/{current} replicas within tolerance of {spec.target:g}"
            else:
                raw = math.ceil(current * ratio - 1e-9)
                reason = f"queue {queue} = {queue / current:.1f}/replica vs target {spec.target:g}"
        horizon = now_s - spec.scale_down_stabilization_s
        history = (*(h for h in state.history if h[0] > horizon), (now_s, raw))
        desired = max(v for _, v in history)
        if desired > raw:
            reason += f"; held at {desired} by {spec.scale_down_stabilization_s:g}s stabilization"
        return Recommendation(self.name, desired, reason), QueueDepthState(history)
