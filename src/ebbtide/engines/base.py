"""The engine contract: how to launch a replica's server, tell loading from ready, warm it up, pause it for a
hot standby, and read its metrics.

Engines do no process management (that is the provider's job) and no routing. ``health``, ``warm_up`` and the
sleep endpoints are the only I/O-facing parts; ``parse_metrics`` is pure so it can be tested on recorded text.

A hot standby is paused by ``pause`` style: ``signal`` (the provider stops the process with SIGSTOP and resumes
it with SIGCONT: llama.cpp, one process), ``http`` (the engine's own endpoints: vLLM sleep mode level 1) or
``none`` (the replica stays loaded and idle, only unrouted).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

import aiohttp

__all__ = ["Engine", "EngineStats", "Health", "LaunchPlan", "PauseStyle"]

PauseStyle = Literal["signal", "http", "none"]


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

    @property
    def pause(self) -> PauseStyle:
        """How a hot standby is paused (module docstring)."""
        ...

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan: ...

    def stage_plan(self) -> LaunchPlan | None:
        """argv that only stages this engine's weights onto the node (a warm standby), or None: nothing to
        stage (local weights, or an engine that fetches its own)."""
        ...

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> Health: ...

    async def warm_up(self, session: aiohttp.ClientSession, base_url: str) -> bool:
        """One tiny completion (1 output token) before the replica takes traffic; True when it was answered."""
        ...

    async def sleep(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """``pause == "http"`` only: put the loaded engine to sleep (raises on failure)."""
        ...

    async def wake(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """``pause == "http"`` only: wake a sleeping engine (raises on failure)."""
        ...

    def parse_metrics(self, text: str) -> EngineStats: ...

    def upstream_model(self, requested: str) -> str | None:
        """Model name to send upstream instead of the client's, or None to pass it through."""
        ...
