"""In-process stand-ins for what ``serve`` talks to over the network, so its control loop and admission run on a
``ManualClock`` with no socket: a provider whose replicas become healthy ``cold_start_s`` after launch (virtual
time) — and, once paused as a hot standby, ``wake_s`` after they are resumed — their engine, and an upstream
whose answers are held until a test releases them.

Usage::

    clock = ManualClock(1_000.0); provider = FakeProvider(clock, cold_start_s=30); upstream = FakeUpstream()
    runtime = Runtime(cfg, store, provider, PolicyClock(1.0, clock), clock=clock, upstream=upstream,
                      engines=provider.engine)
    response = await send(runtime, "p")   # one non-streamed chat completion through dispatch
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from ebbtide.config import PoolSpec
from ebbtide.engines.base import EngineStats, Health, LaunchPlan, PauseStyle
from ebbtide.engines.factory import AnyEngineSpec
from ebbtide.providers.base import Launched
from ebbtide.serve.clock import Clock
from ebbtide.serve.control.runtime import Runtime
from ebbtide.serve.gateway.auth import ANONYMOUS, Caller
from ebbtide.serve.gateway.dispatch import dispatch
from ebbtide.serve.gateway.errors import ApiError

__all__ = ["FakeEngine", "FakeProvider", "FakeUpstream", "send"]


class FakeProvider:
    """Replicas that exist from ``launch`` until ``terminate``; healthy once ``cold_start_s`` of clock time passed."""

    name = "fake"

    def __init__(self, clock: Clock, cold_start_s: float, wake_s: float = 0.0) -> None:
        self.clock = clock
        self.cold_start_s = cold_start_s
        self.wake_s = wake_s
        self.launched_at: dict[str, float] = {}
        self.paused: set[str] = set()
        self.resumed_at: dict[str, float] = {}
        self.staged: list[str] = []
        self.terminated: list[str] = []

    async def launch(self, pool: PoolSpec, engine: Any, replica_id: str) -> Launched:
        self.launched_at[replica_id] = self.clock.now()
        return Launched(replica_id, pool.name, f"http://fake/{replica_id}", {"fake": 1})

    async def terminate(self, launched: Launched, grace_s: float) -> None:
        self.paused.discard(launched.replica_id)
        if self.launched_at.pop(launched.replica_id, None) is not None:
            self.terminated.append(launched.replica_id)

    async def pause(self, launched: Launched) -> None:
        self.paused.add(launched.replica_id)

    async def resume(self, launched: Launched) -> None:
        if launched.replica_id in self.paused:
            self.paused.discard(launched.replica_id)
            self.resumed_at[launched.replica_id] = self.clock.now()

    async def stage(self, pool: PoolSpec, engine: Any, replica_id: str) -> None:
        self.staged.append(replica_id)

    async def phases(self, launched: Launched) -> dict[str, Any] | None:
        return None

    async def alive(self, launched: Launched) -> bool:
        return launched.replica_id in self.launched_at

    async def renew(self, launched: Launched) -> None:
        return None

    async def close(self) -> None:
        return None

    def healthy(self, base_url: str) -> bool:
        rid = base_url.rsplit("/", 1)[-1]
        since = self.launched_at.get(rid)
        return since is not None and rid not in self.paused and self.clock.now() >= self.due(rid)

    def due(self, rid: str) -> float:
        """When the replica ``rid`` turns healthy (clock time): its cold start, or its wake once resumed."""
        if rid in self.resumed_at:
            return self.resumed_at[rid] + self.wake_s
        return self.launched_at[rid] + self.cold_start_s

    def engine(self, spec: AnyEngineSpec) -> FakeEngine:
        return FakeEngine(self, getattr(spec, "slots", 1))


class FakeEngine:
    kind = "fake"
    launches = True
    pause: PauseStyle = "signal"  # a hot standby is paused through the provider (FakeProvider.pause/resume)

    def __init__(self, provider: FakeProvider, slots: int) -> None:
        self.provider = provider
        self.slots = slots

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan:
        return LaunchPlan([], {})

    def stage_plan(self) -> LaunchPlan | None:
        return None

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> Health:
        return Health.READY if self.provider.healthy(base_url) else Health.LOADING

    async def warm_up(self, session: aiohttp.ClientSession, base_url: str) -> bool:
        return self.provider.healthy(base_url)

    async def sleep(self, session: aiohttp.ClientSession, base_url: str) -> None:
        raise NotImplementedError("FakeEngine pauses through its provider")

    async def wake(self, session: aiohttp.ClientSession, base_url: str) -> None:
        raise NotImplementedError("FakeEngine pauses through its provider")

    def parse_metrics(self, text: str) -> EngineStats:
        return EngineStats()

    def upstream_model(self, requested: str) -> str | None:
        return None


class _Reply:
    def __init__(self, body: bytes) -> None:
        self.status = 200
        self.content_type = "application/json"
        self._body = body
        self._sent = False

    @property
    def complete(self) -> bool:
        return self._sent

    async def read(self) -> bytes:
        self._sent = True
        return self._body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._sent = True
        yield self._body

    def release(self) -> None:
        return None


class FakeUpstream:
    """Answers every POST with a small completion; while ``holding``, answers wait until ``release()``."""

    def __init__(self) -> None:
        self.holding = False
        self._gate = asyncio.Event()
        self.waiting = 0
        self.urls: list[str] = []

    def hold(self) -> None:
        self.holding = True
        self._gate = asyncio.Event()

    def release(self) -> None:
        self.holding = False
        self._gate.set()

    async def post(self, url: str, body: bytes, timeout_s: float) -> _Reply:
        self.urls.append(url)
        if self.holding:
            self.waiting += 1
            try:
                await self._gate.wait()
            finally:
                self.waiting -= 1
        answer = {"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "ok"}}],
                  "usage": {"completion_tokens": 2}}
        return _Reply(json.dumps(answer).encode())

    def close(self) -> None:
        return None


CHAT = {"model": "p", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


async def send(runtime: Runtime, pool: str, deadline_s: float | None = None, caller: Caller = ANONYMOUS,
               max_tokens: int = 2) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One non-streamed chat completion through ``dispatch`` (admission, fallback, queue, proxy):
    (status, JSON body, headers); a refusal comes back as its OpenAI-shaped error."""
    headers = {} if deadline_s is None else {"X-Ebbtide-Deadline-S": str(deadline_s)}
    request = make_mocked_request("POST", "/v1/chat/completions", headers=headers)
    payload = {**CHAT, "model": pool, "max_tokens": max_tokens}
    try:
        response = await dispatch(request, runtime, runtime.pools[pool], caller, "/v1/chat/completions", payload,
                                  json.dumps(payload).encode())
    except ApiError as exc:
        response = exc.response()
    assert isinstance(response, web.Response) and response.body is not None
    assert isinstance(response.body, bytes)
    return response.status, json.loads(response.body), dict(response.headers)
