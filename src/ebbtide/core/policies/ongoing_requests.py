"""``ongoing_requests``: Ray Serve's default policy — target ongoing requests per replica, with delays.

Ongoing requests = running on replicas + waiting in the gateway queue (Ray counts queued-at-handle requests
too). The policy samples that total every ``metrics_interval_s`` (10 s; in Ray, how often replicas and handles
push their counts) and averages the samples of the last ``look_back_period_s`` (30 s). Then, with current =
capacity:

    desired = current + (average / target_per_replica − current) × factor

where factor = ``upscaling_factor`` when growing and ``downscaling_factor`` when shrinking (both 1.0 = no
smoothing, Ray's default ``smoothing_factor``), rounded up once at the end. A change holds only after it has
been wanted continuously, in the same direction and at the same capacity, for ``upscale_delay_s`` (30 s) or
``downscale_delay_s`` (600 s) of policy time; until then the policy holds the current count (which also
withholds its consent to other policies' scale-in). A capacity change restarts the wait, as Ray resets its
decision counter after each scaling. Cold start: at zero replicas with requests waiting the policy asks for
one replica (ceil(``upscaling_factor``)) at once, without the upscale delay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ebbtide.core.policies.base import PolicySpec, Recommendation
from ebbtide.core.signals import PoolSignals

__all__ = ["OngoingRequestsPolicy", "OngoingRequestsSpec", "OngoingRequestsState"]

_EPS = 1e-9


class OngoingRequestsSpec(PolicySpec):
    kind: Literal["ongoing_requests"] = "ongoing_requests"
    target_per_replica: float = Field(2.0, gt=0, description="Ray target_ongoing_requests.")
    upscale_delay_s: float = Field(30.0, ge=0, description="Wanted this long to scale up.")
    downscale_delay_s: float = Field(600.0, ge=0, description="Wanted this long to scale down.")
    upscaling_factor: float = Field(1.0, gt=0, description="Scales each upscaling step.")
    downscaling_factor: float = Field(1.0, gt=0, description="Scales each downscaling step.")
    look_back_period_s: float = Field(30.0, gt=0, description="Samples averaged over this window.")
    metrics_interval_s: float = Field(10.0, gt=0, description="One sample of ongoing requests per interval.")

    def build(self) -> OngoingRequestsPolicy:
        return OngoingRequestsPolicy(self)


@dataclass(frozen=True, slots=True)
class OngoingRequestsState:
    samples: tuple[tuple[float, float], ...] = ()
    direction: int = 0
    """+1 while a scale-up is wanted, -1 while a scale-down is wanted, 0 otherwise."""
    since_s: float = 0.0
    base: int = 0
    """Capacity when the current run of wanting began; a different capacity restarts the run."""


class OngoingRequestsPolicy:
    def __init__(self, spec: OngoingRequestsSpec) -> None:
        self.spec = spec
        self.name = "ongoing_requests"

    def initial_state(self) -> OngoingRequestsState:
        return OngoingRequestsState()

    def decide(
        self, signals: PoolSignals, state: OngoingRequestsState, now_s: float
    ) -> tuple[Recommendation, OngoingRequestsState]:
        spec = self.spec
        samples = state.samples
        if not samples or now_s - samples[-1][0] >= spec.metrics_interval_s - _EPS:
            samples = (*samples, (now_s, float(signals.outstanding)))
        samples = tuple(s for s in samples if s[0] > now_s - spec.look_back_period_s) or samples[-1:]
        average = sum(v for _, v in samples) / len(samples)
        current = signals.capacity

        if current == 0 and signals.outstanding > 0:
            desired = max(1, math.ceil(spec.upscaling_factor - _EPS))
            reason = f"cold start: {signals.outstanding} requests at zero replicas → {desired} now"
            return Recommendation(self.name, desired, reason), OngoingRequestsState(samples)

        wanted_f = average / spec.target_per_replica
        factor = spec.upscaling_factor if wanted_f > current else spec.downscaling_factor
        raw = max(0, math.ceil(current + (wanted_f - current) * factor - _EPS))
        shown = f"{average:.1f} ongoing (avg {spec.look_back_period_s:g}s)"
        shown += f" / target {spec.target_per_replica:g}"
        direction = (raw > current) - (raw < current)
        if direction == 0:
            hold = Recommendation(self.name, current, f"{shown}: hold {current}")
            return hold, OngoingRequestsState(samples)
        since = state.since_s
        if direction != state.direction or current != state.base:
            since = now_s
        delay = spec.upscale_delay_s if direction > 0 else spec.downscale_delay_s
        waited = now_s - since
        nxt = OngoingRequestsState(samples, direction, since, current)
        if waited >= delay - _EPS:
            return Recommendation(self.name, raw, f"{shown}: {current}→{raw} wanted for {waited:.0f}s"), nxt
        word = "upscale" if direction > 0 else "downscale"
        reason = f"{shown}: {current}→{raw} wanted for {waited:.0f}s < {word}_delay_s {delay:g}"
        reason += f": hold {current}"
        return Recommendation(self.name, current, reason), nxt
