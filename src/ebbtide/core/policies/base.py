"""The policy contract: ``decide(signals, state, now_s) -> (Recommendation, state)``, pure and typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from ebbtide.core.signals import PoolSignals
from ebbtide.core.standby import StandbyWish

__all__ = ["Policy", "PolicySpec", "Recommendation", "TimeZone"]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One policy's opinion: a desired count (``None`` = no opinion) and/or bounds, with the reason why."""

    policy: str
    desired: int | None
    reason: str
    min_replicas: int | None = None
    max_replicas: int | None = None
    bounds_source: str | None = None
    variant: str | None = None
    standby: StandbyWish | None = None  # the reserve this policy wants (None: no opinion)


class Policy(Protocol):
    name: str

    def initial_state(self) -> Any: ...

    def decide(self, signals: PoolSignals, state: Any, now_s: float) -> tuple[Recommendation, Any]: ...


class PolicySpec(BaseModel):
    """Base of every policy's config block; subclasses add ``kind: Literal[...]`` and their fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self) -> Policy:
        raise NotImplementedError


def _iana_time_zone(value: str, info: ValidationInfo) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{info.field_name} = {value!r}: not an IANA time zone") from exc
    return value


TimeZone = Annotated[str, AfterValidator(_iana_time_zone)]
"""A policy field naming an IANA time zone (``UTC``, ``America/New_York``), checked when the config loads."""
