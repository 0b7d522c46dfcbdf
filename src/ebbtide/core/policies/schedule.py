"""``schedule``: cron actions (5-field, time-zone aware) that set min/max; the latest due action is in force.

Copies Application Auto Scaling scheduled actions (``cron(45 8 ? * MON-FRI *)`` + Timezone) and KEDA's cron trigger.
The policy has no opinion on the count itself; it only moves the bounds the controller clamps to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from ebbtide.core.policies.base import PolicySpec, Recommendation, TimeZone
from ebbtide.core.signals import PoolSignals
from ebbtide.core.standby import StandbySpec

__all__ = ["ScheduleAction", "SchedulePolicy", "ScheduleSpec", "ScheduleState"]


class ScheduleAction(PolicySpec):
    cron: str = Field(description="5-field cron expression in the schedule's time zone, e.g. '45 8 * * MON-FRI'.")
    min_replicas: int | None = Field(None, ge=0, description="Lower bound while this action is in force.")
    max_replicas: int | None = Field(None, ge=1, description="Upper bound while this action is in force.")
    name: str | None = Field(None, description="Shown in decisions, e.g. 'morning-pre-warm'.")
    variant: str | None = Field(
        None, description="Pool variant in force (vertical scaling); unset = the pool's own engine, 'default'."
    )
    standby: StandbySpec | None = Field(
        None, description="Standby reserve while this action is in force; unset = scaling.standby."
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"cron = {value!r}: must be a valid 5-field cron expression")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ScheduleAction:
        if self.min_replicas is None and self.max_replicas is None and self.standby is None:
            raise ValueError("an action must set min_replicas, max_replicas, standby or a combination")
        if self.min_replicas is not None and self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas = {self.max_replicas}: must be >= min_replicas = {self.min_replicas}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.cron


class ScheduleSpec(PolicySpec):
    kind: Literal["schedule"] = "schedule"
    tz: TimeZone = Field("UTC", description="IANA time zone of the cron expressions.")
    actions: list[ScheduleAction] = Field(min_length=1, description="The latest due action sets the bounds.")

    def build(self) -> SchedulePolicy:
        return SchedulePolicy(self)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    active: int | None = None
    active_since_s: float = 0.0
    valid_from_s: float = math.inf
    valid_until_s: float = -math.inf
    recommendation: Recommendation | None = None


class SchedulePolicy:
    def __init__(self, spec: ScheduleSpec) -> None:
        self.spec = spec
        self.name = "schedule"
        self._tz = ZoneInfo(spec.tz)
        self._uses_variants = any(a.variant for a in spec.actions)

    def initial_state(self) -> ScheduleState:
        return ScheduleState()

    def decide(self, signals: PoolSignals, state: ScheduleState, now_s: float) -> tuple[Recommendation, ScheduleState]:
        if state.recommendation is not None and state.valid_from_s <= now_s < state.valid_until_s:
            return state.recommendation, state
        state = self._resolve(now_s)
        assert state.active is not None
        action = self.spec.actions[state.active]
        since = datetime.fromtimestamp(state.active_since_s, self._tz).strftime("%a %H:%M")
        bounds = ", ".join(
            f"{k} {v}" for k, v in (("min", action.min_replicas), ("max", action.max_replicas)) if v is not None
        )
        variant = action.variant or ("default" if self._uses_variants else None)
        if variant is not None:
            bounds += f", variant {variant}"
        standby = action.standby.wish() if action.standby is not None else None
        if standby is not None:
            bounds += f"{', ' if bounds else ''}standby {standby}"
        reason = f"schedule {bounds} ({action.label}, since {since})"
        rec = Recommendation(self.name, None, reason, action.min_replicas, action.max_replicas, action.label, variant,
                             standby)
        return rec, replace(state, recommendation=rec)

    def _resolve(self, now_s: float) -> ScheduleState:
        after_now = datetime.fromtimestamp(math.floor(now_s) + 1, self._tz)
        at_now = datetime.fromtimestamp(now_s, self._tz)
        prev = [croniter(a.cron, after_now).get_prev(float) for a in self.spec.actions]
        nxt = [croniter(a.cron, at_now).get_next(float) for a in self.spec.actions]
        active = max(range(len(prev)), key=lambda i: (prev[i], i))
        return ScheduleState(active, prev[active], now_s, min(nxt))
