"""Safe iteration on a pool: shadow, canary steps or blue-green for a candidate, with automatic rollback.

Pure: the driver keeps a sliding window of (time, latency, ok) per arm and asks ``step_rollout`` once per tick.
Rollback when, over ``window_s`` with at least ``min_requests`` on each arm, the candidate's error rate exceeds the
baseline's by more than ``max_error_rate_delta`` or its P95 latency exceeds ``max_p95_ratio`` × the baseline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ArmStats", "RollbackSpec", "RolloutSpec", "RolloutState", "arm_stats", "step_rollout"]

Status = Literal["running", "promoted", "rolled_back"]


class RollbackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    window_s: float = Field(60.0, gt=0, description="Window over which both arms are compared.")
    min_requests: int = Field(20, ge=1, description="Per arm, before any verdict.")
    max_error_rate_delta: float = Field(0.05, ge=0, description="Candidate error rate − baseline's, at most.")
    max_p95_ratio: float = Field(1.5, gt=0, description="Candidate P95 latency / baseline's, at most.")


class RolloutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["shadow", "canary", "blue-green"] = Field(description="How the candidate meets traffic.")
    replicas: int = Field(1, ge=1, description="Candidate replicas for shadow and canary (blue-green: all).")
    percent: float = Field(10.0, gt=0, le=100, description="Shadow: share of requests mirrored.")
    steps: list[float] = Field(
        default_factory=lambda: [10.0, 50.0, 100.0], description="Canary: traffic % per step; 100 = promote."
    )
    step_interval_s: float = Field(300.0, gt=0, description="Time per canary step / blue-green watch window.")
    rollback: RollbackSpec = Field(default_factory=RollbackSpec, description="Automatic rollback thresholds.")

    @model_validator(mode="after")
    def _steps(self) -> RolloutSpec:
        if any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(self.steps):
            raise ValueError(f"steps = {self.steps}: must be increasing percentages in (0, 100]")
        return self


@dataclass(frozen=True, slots=True)
class ArmStats:
    requests: int
    errors: int
    p95_s: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class RolloutState:
    status: Status = "running"
    step: int = 0
    step_started_s: float = 0.0
    reason: str = ""


def arm_stats(samples: Sequence[tuple[float, float, bool]], since_s: float) -> ArmStats:
    recent = [(lat, ok) for t, lat, ok in samples if t >= since_s]
    latencies = sorted(lat for lat, ok in recent if ok)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None
    return ArmStats(len(recent), sum(1 for _, ok in recent if not ok), p95)


def traffic_percent(spec: RolloutSpec, state: RolloutState) -> float:
    """Share of live requests the candidate answers now (shadow answers none: it only sees mirrored copies)."""
    if state.status != "running":
        return 100.0 if state.status == "promoted" else 0.0
    if spec.mode == "canary":
        return spec.steps[state.step]
    return 100.0 if spec.mode == "blue-green" else 0.0


def step_rollout(
    spec: RolloutSpec, state: RolloutState, baseline: ArmStats, candidate: ArmStats, now_s: float
) -> tuple[RolloutState, str | None]:
    """Advance one tick; returns the new state and an event sentence when something changed."""
    if state.status != "running":
        return state, None
    rb = spec.rollback
    if candidate.requests >= rb.min_requests and baseline.requests >= rb.min_requests:
        delta = candidate.error_rate - baseline.error_rate
        if delta > rb.max_error_rate_delta:
            why = f"candidate error rate {candidate.error_rate:.1%} vs baseline {baseline.error_rate:.1%}"
            return replace(state, status="rolled_back", reason=why), f"rollback: {why}"
        if candidate.p95_s is not None and baseline.p95_s is not None and baseline.p95_s > 0:
            ratio = candidate.p95_s / baseline.p95_s
            if ratio > rb.max_p95_ratio:
                why = f"candidate P95 {candidate.p95_s:.3f}s = {ratio:.2f}× baseline {baseline.p95_s:.3f}s"
                return replace(state, status="rolled_back", reason=why), f"rollback: {why}"
    if now_s - state.step_started_s < spec.step_interval_s or candidate.requests < rb.min_requests:
        return state, None
    if spec.mode == "canary" and state.step + 1 < len(spec.steps):
        nxt = replace(state, step=state.step + 1, step_started_s=now_s)
        return nxt, f"canary step {state.step + 2}/{len(spec.steps)}: {spec.steps[state.step + 1]:g}% of traffic"
    return replace(state, status="promoted", reason="healthy through every step"), "promote candidate"
