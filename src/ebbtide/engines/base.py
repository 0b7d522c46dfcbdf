"""The engine contract: how to launch a replica's server, tell loading from ready, and read its metrics.

Engines do no process management (that is the provider's job) and no routing. ``health`` and metrics parsing
are the only I/O-facing parts; ``parse_metrics`` is pure so it can be tested on recorded text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiohttp

__all__ = ["Engine", "EngineStats", "Health", "LaunchPlan"]


class Health(StrEnum):
    READY = "ready"
    LOADING = "loading"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What ebbtide reads from an engine's /metrics; ``None`` where the engine does not expose it."""

    requests_running: float | None = None
    requests_waiting: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    kv_cache_usage: float | None = None


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """argv and environment for one replica's server process (the provider decides where it runs)."""

    argv: list[str]
    env: dict[str, str]


class Engine(Protocol):
    kind: str
    slots: int
    launches: bool  # False for engines we only connect to (``openai``)

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan: ...

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> Health: ...

    def parse_metrics(self, text: str) -> EngineStats: ...

    def upstream_model(self, requested: str) -> str | None:
        """Model name to send upstream instead of the client's, or None to pass it through."""
        ...
