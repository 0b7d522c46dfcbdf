"""Open the Redis backend for ``ebbtide serve`` (and the CLI): fail fast, naming the URL, when Redis is not there."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ebbtide.config import StateSpec
from ebbtide.serve.clock import Clock, WallClock
from ebbtide.serve.shared.coordinator import Coordinator
from ebbtide.serve.shared.keys import RedisKeyStore
from ebbtide.serve.shared.quota import SharedQuota
from ebbtide.serve.shared.redis_state import RedisState
from ebbtide.serve.shared.store import RedisStore

__all__ = ["Shared", "StateUnavailable", "open_redis", "open_shared", "redis_url"]


class StateUnavailable(Exception):
    """The configured Redis cannot be reached at startup (a gateway that knows nothing yet must not serve)."""


def redis_url(spec: StateSpec) -> str:
    url = os.environ.get("EBBTIDE_REDIS_URL") or spec.url
    if not url:
        raise StateUnavailable("state.backend is redis but neither state.url nor EBBTIDE_REDIS_URL is set")
    return url


def open_redis(spec: StateSpec) -> RedisState:
    url = redis_url(spec)
    state = RedisState(url, spec.namespace, spec.timeout_s)
    try:
        state.ping()
    except redis.RedisError as exc:
        state.close()
        raise StateUnavailable(f"state.url = {url}: cannot reach Redis ({exc}); start it, or use "
                               "state: {backend: sqlite} for one gateway") from None
    return state


@dataclass
class Shared:
    state: RedisState
    store: RedisStore
    keys: RedisKeyStore
    quota: SharedQuota
    coordinator: Coordinator

    def close(self) -> None:
        self.state.close()


def open_shared(spec: StateSpec, state_dir: Path, report: Callable[[str, dict[str, Any]], None],
                may_lead: bool = True, clock: Clock | None = None) -> Shared:
    clock = clock or WallClock()
    state = open_redis(spec)
    store = RedisStore(state, state_dir / "ebbtide.db")
    keys = RedisKeyStore(state, clock)
    try:
        keys.refresh(force=True)
    except redis.RedisError as exc:
        state.close()
        raise StateUnavailable(f"state.url: cannot read the API keys from Redis ({exc})") from None
    holder: list[Coordinator] = []
    quota = SharedQuota(state, lambda: holder[0].live_gateways if holder else 1)
    coordinator = Coordinator(spec, state, store, keys, quota, clock, report, may_lead)
    holder.append(coordinator)
    return Shared(state, store, keys, quota, coordinator)
