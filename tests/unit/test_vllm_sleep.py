"""vLLM hot standby against vLLM's documented sleep-mode HTTP contract, served by a small fake on 127.0.0.1.

The contract (docs.vllm.ai, "Sleep Mode"; the endpoints exist only with ``VLLM_SERVER_DEV_MODE=1`` and
``--enable-sleep-mode``): ``POST /sleep?level=1`` offloads the weights and answers 200, ``POST /wake_up`` answers
200, ``GET /is_sleeping`` answers ``{"is_sleeping": bool}``. This is a fake that follows it, not vLLM: nothing here
ran on a GPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ebbtide.config import Config, PoolSpec, VllmEngineSpec
from ebbtide.core.signals import ReplicaState
from ebbtide.core.standby import StandbyWish
from ebbtide.engines.vllm import VllmEngine
from ebbtide.providers.base import Launched
from ebbtide.serve.control.fleet import Fleet


class FakeVllm:
    """What a vLLM server started with sleep mode answers; ``log`` is every call, in order."""

    def __init__(self, sleep_status: int = 200) -> None:
        self.sleeping = False
        self.sleep_status = sleep_status
        self.log: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/sleep", self.sleep)
        app.router.add_post("/wake_up", self.wake_up)
        app.router.add_get("/is_sleeping", self.is_sleeping)
        app.router.add_post("/v1/completions", self.completions)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def sleep(self, request: web.Request) -> web.Response:
        self.log.append(f"sleep level={request.query.get('level', '1')}")
        if self.sleep_status == 200:
            self.sleeping = True
        return web.Response(status=self.sleep_status)

    async def wake_up(self, request: web.Request) -> web.Response:
        self.log.append("wake_up")
        self.sleeping = False
        return web.Response(status=200)

    async def is_sleeping(self, request: web.Request) -> web.Response:
        return web.json_response({"is_sleeping": self.sleeping})

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.log.append(f"completion model={body.get('model')} asleep={self.sleeping}")
        if self.sleeping:
            return web.json_response({"error": "engine is sleeping"}, status=503)
        return web.json_response({"choices": [{"text": "x"}], "usage": {"completion_tokens": 1}})


class ServerProvider:
    """Launches nothing: every replica is the fake server. Records the provider calls the fleet made."""

    name = "fake-server"

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[str] = []

    async def launch(self, pool: PoolSpec, engine: Any, replica_id: str) -> Launched:
        self.calls.append("launch")
        return Launched(replica_id, pool.name, self.url, {})

    async def terminate(self, launched: Launched, grace_s: float) -> None:
        self.calls.append("terminate")

    async def alive(self, launched: Launched) -> bool:
        return True

    async def renew(self, launched: Launched) -> None:
        return None

    async def pause(self, launched: Launched) -> None:
        self.calls.append("pause")

    async def resume(self, launched: Launched) -> None:
        self.calls.append("resume")

    async def stage(self, pool: PoolSpec, engine: Any, replica_id: str) -> None:
        self.calls.append("stage")

    async def phases(self, launched: Launched) -> dict[str, Any] | None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeVllm, str]]:
    server = FakeVllm()
    test_server = TestServer(server.app(), host="127.0.0.1")
    await test_server.start_server()
    try:
        yield server, str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()


def spec(sleep_mode: bool) -> VllmEngineSpec:
    return VllmEngineSpec(model="meta-llama/Meta-Llama-3-8B-Instruct", sleep_mode=sleep_mode)


def test_sleep_mode_launches_with_the_flag_and_dev_mode_and_pauses_over_http() -> None:
    plan = VllmEngine(spec(True)).launch_plan(8123, 1, None)
    assert "--enable-sleep-mode" in plan.argv and plan.env == {"VLLM_SERVER_DEV_MODE": "1"}
    assert VllmEngine(spec(True)).pause == "http"
    plain = VllmEngine(spec(False))
    assert "--enable-sleep-mode" not in plain.launch_plan(8123, 1, None).argv and plain.pause == "none"


async def test_sleep_and_wake_follow_the_documented_endpoints(fake: tuple[FakeVllm, str]) -> None:
    server, url = fake
    engine = VllmEngine(spec(True))
    async with aiohttp.ClientSession() as session:
        assert await engine.warm_up(session, url)
        await engine.sleep(session, url)
        assert await engine.is_sleeping(session, url)
        await engine.wake(session, url)
        assert not await engine.is_sleeping(session, url)
    assert server.log == ["completion model=meta-llama/Meta-Llama-3-8B-Instruct asleep=False", "sleep level=1",
                          "wake_up"]


async def test_a_sleep_the_server_refuses_is_an_error_naming_the_endpoint(fake: tuple[FakeVllm, str]) -> None:
    server, url = fake
    server.sleep_status = 404  # started without VLLM_SERVER_DEV_MODE: no such route
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RuntimeError, match=r"POST .*/sleep\?level=1 answered 404"):
            await VllmEngine(spec(True)).sleep(session, url)


async def wait_state(fleet: Fleet, state: ReplicaState) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not any(r.state is state for r in fleet.replicas.values()):
        assert loop.time() < deadline, f"no replica {state.value}: {[r.state for r in fleet.replicas.values()]}"
        assert not any(r.state is ReplicaState.FAILED for r in fleet.replicas.values())
        await asyncio.sleep(0.01)


async def test_a_vllm_hot_standby_sleeps_once_warm_and_wakes_on_promotion(
    fake: tuple[FakeVllm, str], tmp_path: Path
) -> None:
    server, url = fake
    cfg = Config.model_validate({"pools": [{
        "name": "v", "engine": spec(True).model_dump(),
        "scaling": {"min_replicas": 0, "max_replicas": 1, "standby": {"tier": "hot", "count": 1}},
    }]})  # fmt: skip
    provider = ServerProvider(url)
    events: list[str] = []
    async with aiohttp.ClientSession() as session:
        fleet = Fleet(cfg.pools[0], provider, VllmEngine(cfg.pools[0].engine), session,  # type: ignore[arg-type]
                      lambda kind, replica, detail: events.append(kind), iter(["v-1", "v-2"]).__next__, 10)
        try:
            fleet.set_desired(0)
            await wait_state(fleet, ReplicaState.STANDBY)
            assert server.sleeping and server.log[-1] == "sleep level=1"
            assert server.log[0].startswith("completion") and "asleep=False" in server.log[0]  # warmed up first
            fleet.set_desired(1, standby=StandbyWish("hot", 0))  # no refill: it would share this one fake server
            await wait_state(fleet, ReplicaState.READY)
            assert not server.sleeping and "wake_up" in server.log
            assert "pause" not in provider.calls and "resume" not in provider.calls  # HTTP, not signals
            assert events.index("standby") < events.index("promoted") < events.index("ready")
        finally:
            await fleet.close()
