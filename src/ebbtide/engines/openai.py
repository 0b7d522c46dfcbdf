"""An already-running OpenAI-compatible server that ebbtide routes to but never starts or stops.

``base_url`` is the configured URL without a trailing ``/v1``, so the gateway appends ``/v1/...`` for every
engine alike. Health: ``GET {base}/v1/models`` answering 200 (or 401/403: the server is up, it only wants a
key we do not send on probes) → READY; otherwise ``GET {base}/health`` 200 → READY; else DOWN. There is no
LOADING.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from ebbtide.config import OpenAIEngineSpec
from ebbtide.engines._common import HEALTH_TIMEOUT_S, NoStandbyHooks, get_status
from ebbtide.engines.base import EngineStats, Health, LaunchPlan

__all__ = ["OpenAIEngine", "normalize_base_url"]

_UP_STATUSES = frozenset({200, 401, 403})


def normalize_base_url(url: str) -> str:
    """``http://h:8000/v1/`` → ``http://h:8000``: the prefix that ``/v1/...`` hangs under."""
    base = url.rstrip("/")
    return base.removesuffix("/v1")


class OpenAIEngine(NoStandbyHooks):
    """Usage: ``OpenAIEngine(spec)``; probe it with ``health(session, engine.base_url)``."""

    kind = "openai"
    launches = False

    def __init__(self, spec: OpenAIEngineSpec, *, health_timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        self.spec = spec
        self.slots = spec.slots
        self.base_url = normalize_base_url(spec.url)
        self.health_timeout_s = health_timeout_s

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan:
        raise NotImplementedError(f"engine kind 'openai' ({self.spec.url}) is never launched by ebbtide")

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> Health:
        base = normalize_base_url(base_url)
        if await get_status(session, f"{base}/v1/models", self.health_timeout_s) in _UP_STATUSES:
            return Health.READY
        if await get_status(session, f"{base}/health", self.health_timeout_s) == 200:
            return Health.READY
        return Health.DOWN

    def parse_metrics(self, text: str) -> EngineStats:
        return EngineStats()

    def upstream_model(self, requested: str) -> str | None:
        return self.spec.model or None
