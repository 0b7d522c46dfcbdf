"""``concurrency``: the Knative Pod Autoscaler (KPA) in concurrency mode — stable and panic windows.

Observed concurrency = requests running on replicas + requests waiting in the gateway queue, sampled every
tick and averaged over two windows: the stable window (``stable_window_s``, 60 s) and the panic window
(``panic_window_pct`` = 10 % of it, 6 s). desired = ceil(average / ``target_per_replica``) per window, limited
to [floor(ready / ``max_scale_down_rate``), ceil(ready × ``max_scale_up_rate``)] (2 and 1000, Knative's
defaults).

Panic starts (or is extended) whenever the panic-window desired count is at least ``panic_threshold`` (2.0 =
200 %) × the ready replicas. While panicking the policy uses the larger of the two windows, never recommends
fewer replicas than the most it recommended in this panic or than the current capacity, and keeps panicking
until a full stable window has passed since the last trigger. Scale-to-zero timing (Knative's grace period) is
the controller's ``scale_to_zero_after_s``; an idle stable window alone only recommends 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from ebbtide.core.policies.base import PolicySpec, Recommendation
from ebbtide.core.signals import PoolSignals

__all__ = ["ConcurrencyPolicy", "ConcurrencySpec", "ConcurrencyState"]

_EPS = 1e-9


class ConcurrencySpec(PolicySpec):
    kind: Literal["concurrency"] = "concurrency"
    target_per_replica: float = Field(
        100.0, gt=0, description="Concurrent requests per replica (container-concurrency-target-default)."
    )
    stable_window_s: float = Field(60.0, ge=6, le=3600, description="Stable window (Knative stable-window).")
    panic_window_pct: float = Field(
        10.0, ge=1, le=100, description="Panic window as % of the stable window (panic-window-percentage)."
    )
    panic_threshold: float = Field(
        2.0, ge=1.1, le=10, description="Panic when panic desired >= this × ready (threshold % / 100)."
    )
    max_scale_up_rate: float = Field(1000.0, gt=1, description="At most ceil(rate × ready) replicas.")
    max_scale_down_rate: float = Field(2.0, gt=1, description="At least floor(ready / rate) replicas.")

    @property
    def panic_window_s(self) -> float:
        return self.stable_window_s * self.panic_window_pct / 100.0

    def build(self) -> ConcurrencyPolicy:
        return ConcurrencyPolicy(self)


@dataclass(frozen=True, slots=True)
class ConcurrencyState:
    samples: tuple[tuple[float, float], ...] = ()
    panic_since_s: float | None = None
    """Time of the latest panic trigger; ``None`` when not panicking."""
    max_panic: int = 0


def _window_average(samples: tuple[tuple[float, float], ...], now_s: float, window_s: float) -> float:
    inside = [v for t, v in samples if t > now_s - window_s]
    return sum(inside) / len(inside) if inside else 0.0


class ConcurrencyPolicy:
    def __init__(self, spec: ConcurrencySpec) -> None:
        self.spec = spec
        self.name = "concurrency"

    def initial_state(self) -> ConcurrencyState:
        return ConcurrencyState()

    def decide(
        self, signals: PoolSignals, state: ConcurrencyState, now_s: float
    ) -> tuple[Recommendation, ConcurrencyState]:
        spec = self.spec
        observed = float(signals.outstanding)
        samples = (*(s for s in state.samples if s[0] > now_s - spec.stable_window_s), (now_s, observed))
        stable_avg = _window_average(samples, now_s, spec.stable_window_s)
        panic_avg = _window_average(samples, now_s, spec.panic_window_s)
        ready = max(1, signals.ready)
        max_up = math.ceil(spec.max_scale_up_rate * ready - _EPS)
        max_down = math.floor(ready / spec.max_scale_down_rate + _EPS)
        stable_f = stable_avg / spec.target_per_replica
        panic_f = panic_avg / spec.target_per_replica
        stable_n = min(max(math.ceil(stable_f - _EPS), max_down), max_up)
        panic_n = min(max(math.ceil(panic_f - _EPS), max_down), max_up)

        panic_since, max_panic = state.panic_since_s, state.max_panic
        over = panic_f / ready >= spec.panic_threshold - _EPS
        if over:
            panic_since = now_s
        elif panic_since is not None and now_s - panic_since > spec.stable_window_s:
            panic_since, max_panic = None, 0

        window = f"{stable_avg:.1f} avg concurrency over {spec.stable_window_s:g}s"
        if panic_since is None:
            desired = stable_n
            reason = f"{window} / target {spec.target_per_replica:g} → {desired}"
        else:
            desired = max(stable_n, panic_n, max_panic, signals.capacity)
            max_panic = desired
            if over:
                head = f"panic: {panic_avg:.1f} over {spec.panic_window_s:g}s"
                head += f" ≥ {spec.panic_threshold:g}× {ready} ready × target"
            else:
                head = f"panic since the trigger at {panic_since:.0f}s: no scale-down"
            reason = f"{head}; {window} → {desired}"
        return Recommendation(self.name, desired, reason), ConcurrencyState(samples, panic_since, max_panic)
