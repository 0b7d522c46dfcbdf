"""The hot-path upstream client against the stub engine and against raw sockets that misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from ebbtide.serve.gateway import upstream as upstream_module
from ebbtide.serve.gateway.upstream import UpstreamClient, UpstreamError
from ebbtide.testing.stub_engine import StubConfig, stub_server

BODY = json.dumps({"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    return head + await reader.readexactly(length)


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


async def post_json(client: UpstreamClient, url: str, timeout_s: float = 5.0) -> tuple[int, str, bytes]:
    response = await client.post(url, BODY, timeout_s)
    try:
        return response.status, response.content_type, await response.read()
    finally:
        response.release()


async def test_json_answer_from_an_openai_server() -> None:
    client = UpstreamClient()
    async with stub_server() as base:
        status, content_type, body = await post_json(client, base + "/v1/chat/completions")
    client.close()
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["object"] == "chat.completion"


async def test_sequential_requests_share_one_connection() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with pytest.raises(asyncio.IncompleteReadError):
            while True:
                await read_request(reader)
                writer.write(answer(b'{"ok": 1}'))

    client = UpstreamClient()
    async with raw_server(handler) as base:
        for _ in range(5):
            assert (await post_json(client, base + "/v1/completions"))[2] == b'{"ok": 1}'
        assert [len(conns) for conns in client._idle.values()] == [1]
        client.close()
    assert connections == 1


async def test_a_connection_the_replica_closes_leaves_the_pool() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        writer.close()

    client = UpstreamClient()
    async with raw_server(answer_then_close) as base:
        await post_json(client, base + "/x")
        deadline = asyncio.get_running_loop().time() + 5
        while client._idle and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # polls for the peer's close to arrive, with a deadline
    assert client._idle == {}


async def test_stream_arrives_in_order() -> None:
    client = UpstreamClient()
    async with stub_server(StubConfig(chunks=6)) as base:
        response = await client.post(base + "/v1/chat/completions", json.dumps(
            {**json.loads(BODY), "stream": True}).encode(), 5.0)
        chunks = [chunk async for chunk in response]
        response.release()
    client.close()
    text = b"".join(chunks).decode()
    assert response.status == 200 and response.content_type == "text/event-stream"
    assert text.count("data: {") == 6 and text.rstrip().endswith("data: [DONE]")


async def test_idle_connection_closed_by_replica_is_retried_on_a_fresh_one() -> None:
    served = 0

    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(answer(b'{"n": %d}' % served))
        await writer.drain()
        await reader.read(1)  # the client's second request, on the kept-alive connection: drop it
        writer.close()

    client = UpstreamClient()
    async with raw_server(one_answer_then_close) as base:
        assert (await post_json(client, base + "/x"))[2] == b'{"n": 1}'
        assert (await post_json(client, base + "/x"))[2] == b'{"n": 2}'
    client.close()


async def test_a_silent_replica_on_a_pooled_connection_times_out_once_without_a_retry() -> None:
    connections = 0

    async def answers_once_then_hangs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        await reader.read()

    client = UpstreamClient()
    async with raw_server(answers_once_then_hangs) as base:
        await post_json(client, base + "/x")
        with pytest.raises(UpstreamError, match="within"):
            await post_json(client, base + "/x", timeout_s=0.3)
    assert connections == 1


async def test_connection_refused_is_an_upstream_error() -> None:
    async with raw_server(lambda r, w: asyncio.sleep(0)) as base:
        pass  # closed: nothing listens on that port now
    with pytest.raises(UpstreamError, match="cannot connect"):
        await post_json(UpstreamClient(), base + "/x")


async def test_silent_replica_times_out() -> None:
    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with raw_server(never_answers) as base:
        with pytest.raises(UpstreamError, match=r"within 0\.2 s") as info:
            await post_json(UpstreamClient(), base + "/x", timeout_s=0.2)
    assert not info.value.started


async def test_malformed_answer_is_an_upstream_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_server(garbage) as base:
        with pytest.raises(UpstreamError, match="malformed"):
            await post_json(UpstreamClient(), base + "/x")


async def test_drop_mid_body_fails_the_read_as_started() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"9\r\ndata: 1\n\n\r\n")
        await writer.drain()
        writer.transport.abort()

    client = UpstreamClient()
    async with raw_server(half) as base:
        response = await client.post(base + "/x", BODY, 5.0)
        got: list[bytes] = []
        with pytest.raises(UpstreamError, match="lost") as info:
            async for chunk in response:
                got.append(chunk)
        response.release()
    assert got == [b"data: 1\n\n"] and info.value.started


async def test_body_larger_than_the_buffer_limit_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "HIGH_WATER", 1024)
    big = b"x" * 200_000

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(big))
        await writer.drain()

    async with raw_server(large) as base:
        response = await UpstreamClient().post(base + "/x", BODY, 5.0)
        assert await response.read() == big
        response.release()


async def test_non_http_url_is_refused() -> None:
    with pytest.raises(UpstreamError, match="http:// or https://"):
        await UpstreamClient().post("ftp://127.0.0.1/x", BODY, 1.0)
