"""The policy contract: ``decide(signals, state, now_s) -> (Recommendation, state)``, pure and typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from ebbtide.core.signals import PoolSignals

__all__ = ["Policy", "PolicySpec", "Recommendation"]


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


class Policy(Protocol):
    name: str

    def initial_state(self) -> Any: ...

    def decide(self, signals: PoolSignals, state: Any, now_s: float) -> tuple[Recommendation, Any]: ...


class PolicySpec(BaseModel):
    """Base of every policy's config block; subclasses add ``kind: Literal[...]`` and their fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self) -> Policy:
        raise NotImplementedError
