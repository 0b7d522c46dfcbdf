"""The provider contract: put a replica's server somewhere, find its address, tell if it still exists, remove it;
pause and resume it (a hot standby), stage its weights on a node (a warm standby), and report the start-up
milestones its process recorded.

Providers know nothing of health, routing or policy: ``serve/control/fleet.py`` runs the lifecycle (startup
timeout, health checks, drain, replace, standby) over any provider, so local processes, Ray actors and future
backends behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

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

    async def pause(self, launched: Launched) -> None:
        """Stop the replica's process (SIGSTOP) for a hot standby; it must still count as alive, and a lapsed
        lease must still end it although it cannot watch the lease itself while stopped."""
        ...

    async def resume(self, launched: Launched) -> None:
        """Continue a paused replica's process (SIGCONT). Idempotent."""
        ...

    async def stage(self, pool: PoolSpec, engine: Engine, replica_id: str) -> None:
        """Put the engine's weights on a node's disk without starting it (a warm standby); raises on failure."""
        ...

    async def phases(self, launched: Launched) -> dict[str, Any] | None:
        """The replica's start-up milestones as wall-clock epochs on its node — ``spawned`` (the provider
        started the process) and what the process wrote (``started``, ``engine_import``, ``weights_staged``,
        ``weights_loaded``, ``stage``) — or None when it reports none."""
        ...

    async def close(self) -> None: ...
