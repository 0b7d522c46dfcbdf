"""The provider contract: put a replica's server somewhere, find its address, tell if it still exists, remove it.

Providers know nothing of health, routing or policy: ``serve/control/fleet.py`` runs the lifecycle (startup
timeout, health checks, drain, replace) over any provider, so local processes, Ray actors and future backends
behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ebbtide.config import PoolSpec
from ebbtide.engines.base import Engine

__all__ = ["Launched", "Provider"]


@dataclass(frozen=True, slots=True)
class Launched:
    """Where a replica runs. ``handle`` holds provider-specific, JSON-serialisable facts (pid, node id, actor)."""

    replica_id: str
    pool: str
    base_url: str
    handle: dict[str, str | int | float] = field(default_factory=dict)


class Provider(Protocol):
    name: str

    async def launch(self, pool: PoolSpec, engine: Engine, replica_id: str) -> Launched:
        """Start the engine's server for ``replica_id``; return at once with its address (readiness is polled)."""
        ...

    async def terminate(self, launched: Launched, grace_s: float) -> None:
        """SIGTERM (or equivalent), then force after ``grace_s``. Idempotent."""
        ...

    async def alive(self, launched: Launched) -> bool:
        """Whether the process/actor still exists (not whether it is healthy)."""
        ...

    async def renew(self, launched: Launched) -> None:
        """Renew the controller lease; a replica whose lease lapses stops itself (no orphans)."""
        ...

    async def close(self) -> None: ...
