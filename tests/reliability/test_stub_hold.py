"""The stub engine's hold (``/stub/hold`` … ``/stub/release``), which the 1,000-stream test relies on to keep
streams open until it has seen them in flight: held streams really stop after their first chunk, a release lets
them finish, and a hold that nobody releases ends by itself."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from ebbtide.testing.stub_engine import stub_server

BODY = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}


async def _stats(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(base + "/stub/stats") as resp:
        return await resp.json()  # type: ignore[no-any-return]


async def _wait_held(session: aiohttp.ClientSession, base: str, count: int) -> None:
    async with asyncio.timeout(30):
        while (await _stats(session, base))["held"] < count:
            await asyncio.sleep(0.01)


async def _stream(session: aiohttp.ClientSession, base: str, first: asyncio.Event) -> list[bytes]:
    events = []
    async with session.post(base + "/v1/chat/completions", json=BODY) as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(line.strip())
                first.set()
    return events


async def test_held_streams_stop_after_their_first_chunk_until_released() -> None:
    async with stub_server() as base, aiohttp.ClientSession() as session:
        async with session.post(base + "/stub/hold", json={"timeout_s": 60}) as resp:
            assert resp.status == 200
        firsts = [asyncio.Event() for _ in range(3)]
        streams = [asyncio.create_task(_stream(session, base, first)) for first in firsts]
        await _wait_held(session, base, 3)
        async with asyncio.timeout(30):
            for first in firsts:
                await first.wait()  # each client already has its first chunk while held
        assert not any(s.done() for s in streams)
        async with session.post(base + "/stub/release") as resp:
            assert (await resp.json())["released"] == 3
        async with asyncio.timeout(30):
            results = await asyncio.gather(*streams)
        assert [len(r) for r in results] == [5, 5, 5], "4 chunks + [DONE] each"
        stats = await _stats(session, base)
        assert (stats["held"], stats["peak_held"], stats["hold_timeouts"]) == (0, 3, 0)
        # Released means disarmed: a new stream is not held.
        assert len(await _stream(session, base, asyncio.Event())) == 5


async def test_an_unreleased_hold_ends_by_itself_and_is_counted() -> None:
    async with stub_server() as base, aiohttp.ClientSession() as session:
        async with session.post(base + "/stub/hold", json={"timeout_s": 0.2}) as resp:
            assert resp.status == 200
        async with asyncio.timeout(30):
            events = await _stream(session, base, asyncio.Event())
        assert len(events) == 5
        assert (await _stats(session, base))["hold_timeouts"] == 1


async def test_hold_rejects_a_bad_timeout() -> None:
    async with stub_server() as base, aiohttp.ClientSession() as session:
        for body in ({"timeout_s": 0}, {"timeout_s": "long"}, [1]):
            async with session.post(base + "/stub/hold", json=body) as resp:
                assert resp.status == 400, body
        assert (await _stats(session, base))["held"] == 0
