"""Standby tiers: replicas kept started but not routed, so that a scale-out wakes one instead of starting cold.

A pool may keep a reserve of ``count`` replicas of one ``tier`` (``StandbyWish``), beside the replicas that
serve. The fleet plan (``core.fleet``) promotes a reserve member before it starts a replica cold, replaces a
promoted member in the background, and trims the reserve when the wish shrinks. What a tier is:

- ``hot``: the engine is loaded, then paused (llama.cpp: the worker process stopped with SIGSTOP; vLLM: sleep
  mode level 1). Waking takes seconds or less; it costs the instance (``replica.standby.hot.hourly_usd``).
- ``warm``: the weights are staged on the node's disk and no engine runs. Waking is a start from local disk
  (no download); it costs the disk (``replica.standby.warm.hourly_usd``).
- ``cold``: no reserve (every scale-out is a cold start).

Usage::

    wish = StandbyWish("hot", 1)
    best = cheapest_tier([TierOffer("hot", 17.0, 5.0), TierOffer("warm", 0.1, 150.0)], lead_s=60.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "COLD",
    "HOT",
    "TIERS",
    "WARM",
    "StandbySpec",
    "StandbyWish",
    "TierName",
    "TierOffer",
    "cheapest_tier",
    "choose_standby",
    "tier_rank",
]

TierName = Literal["hot", "warm", "cold"]

HOT, WARM, COLD = "hot", "warm", "cold"
TIERS = (HOT, WARM, COLD)


@dataclass(frozen=True, slots=True)
class StandbyWish:
    """Keep ``count`` replicas of ``tier`` in reserve (``cold`` or 0: no reserve)."""

    tier: str = COLD
    count: int = 0

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"standby tier = {self.tier!r}: must be one of {', '.join(TIERS)}")
        if self.count < 0:
            raise ValueError(f"standby count = {self.count}: must be >= 0")

    @property
    def wanted(self) -> int:
        return 0 if self.tier == COLD else self.count

    def __str__(self) -> str:
        return f"{self.count} {self.tier}" if self.wanted else "none"


class StandbySpec(BaseModel):
    """A standby wish in the config (``scaling.standby``, a schedule action's ``standby``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: TierName = Field("cold", description="hot: loaded and paused; warm: weights on the node's disk; cold: none.")
    count: int = Field(0, ge=0, description="Replicas kept in that tier beside the serving ones.")

    def wish(self) -> StandbyWish:
        return StandbyWish(self.tier, self.count)


def tier_rank(tier: str | None) -> int:
    """Which reserve member to wake first: hot before warm (faster)."""
    return TIERS.index(tier) if tier in TIERS else len(TIERS)


@dataclass(frozen=True, slots=True)
class TierOffer:
    """What keeping one replica in ``tier`` costs per hour and how long waking it takes."""

    tier: str
    hourly_usd: float
    wake_s: float


def cheapest_tier(offers: Sequence[TierOffer], lead_s: float) -> TierOffer | None:
    """The cheapest tier that wakes within ``lead_s`` (ties: the faster one); None when none does."""
    fits = [o for o in offers if o.tier != COLD and o.wake_s <= lead_s]
    return min(fits, key=lambda o: (o.hourly_usd, o.wake_s, tier_rank(o.tier)), default=None)


def choose_standby(offers: Sequence[TierOffer], budget_s: float, count: int, active: bool) -> StandbyWish:
    """A policy's reserve: ``count`` replicas of the cheapest tier that wakes within ``budget_s`` while
    ``active`` (the forecast asks for replicas); none when inactive or when no tier wakes that fast."""
    best = cheapest_tier(offers, budget_s) if active and count > 0 else None
    return StandbyWish(best.tier, count) if best is not None else StandbyWish(COLD, 0)
