"""Health probes against small aiohttp servers on 127.0.0.1: status codes, refused connections, hangs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ebbtide.config import LlamaCppEngineSpec, OpenAIEngineSpec, TgiEngineSpec, VllmEngineSpec
from ebbtide.engines import Health, LlamaCppEngine, OpenAIEngine, TgiEngine, VllmEngine

Routes = dict[str, int]
Serve = Callable[[Routes], Awaitable[str]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a server answering each path in ``routes`` with that status (404 elsewhere); returns its URL."""
    servers: list[TestServer] = []

    async def start(routes: Routes) -> str:
        async def handler(request: web.Request) -> web.Response:
            status = routes.get(request.path, 404)
            return web.json_response({"status": "x"}, status=status)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


def _llamacpp() -> LlamaCppEngine:
    return LlamaCppEngine(LlamaCppEngineSpec(), Path("m.gguf"), health_timeout_s=0.5)


@pytest.mark.parametrize(
    ("status", "expected"), [(200, Health.READY), (503, Health.LOADING), (500, Health.DOWN)]
)
async def test_llamacpp_health_maps_status(
    serve: Serve, session: aiohttp.ClientSession, status: int, expected: Health
) -> None:
    url = await serve({"/health": status})
    assert await _llamacpp().health(session, url) is expected


async def test_refused_connection_is_down(session: aiohttp.ClientSession, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    assert await _llamacpp().health(session, url) is Health.DOWN
    assert await VllmEngine(VllmEngineSpec(model="m")).health(session, url) is Health.DOWN
    assert await OpenAIEngine(OpenAIEngineSpec(url=url)).health(session, url) is Health.DOWN


async def test_a_server_that_never_answers_is_down_within_the_timeout(session: aiohttp.ClientSession) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/health", hang)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        engine = LlamaCppEngine(LlamaCppEngineSpec(), Path("m.gguf"), health_timeout_s=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await engine.health(session, str(server.make_url(""))) is Health.DOWN
        assert loop.time() - started < 2.0
    finally:
        await server.close()


@pytest.mark.parametrize(("status", "expected"), [(200, Health.READY), (503, Health.DOWN)])
async def test_vllm_and_tgi_have_no_loading_state(
    serve: Serve, session: aiohttp.ClientSession, status: int, expected: Health
) -> None:
    url = await serve({"/health": status})
    assert await VllmEngine(VllmEngineSpec(model="m")).health(session, url) is expected
    assert await TgiEngine(TgiEngineSpec(model="m")).health(session, url) is expected


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ({"/v1/models": 200}, Health.READY),
        ({"/v1/models": 401}, Health.READY),
        ({"/health": 200}, Health.READY),
        ({"/v1/models": 500, "/health": 503}, Health.DOWN),
        ({}, Health.DOWN),
    ],
)
async def test_openai_health(
    serve: Serve, session: aiohttp.ClientSession, routes: Routes, expected: Health
) -> None:
    url = await serve(routes)
    engine = OpenAIEngine(OpenAIEngineSpec(url=f"{url}/v1"))
    assert await engine.health(session, engine.base_url) is expected
    assert await engine.health(session, f"{url}/v1/") is expected
