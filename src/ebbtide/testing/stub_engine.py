"""A stub OpenAI-compatible engine: answers at once with canned text. It measures the gateway, never a model.

Serves ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/completions``
(JSON, or SSE with ``chunks`` chunks when ``stream`` is true; fewer when ``max_tokens`` is smaller) and
``GET /metrics`` with llama.cpp's metric names, so the ``openai`` and ``llamacpp`` engine parsers read it.

For tests that need many requests open at once whatever the machine's speed, the stub can *hold* them:
``POST /stub/hold`` (optional JSON ``{"timeout_s": 60}``) makes every completion that arrives afterwards stop
(a stream after its first chunk, a JSON answer before its body) until ``POST /stub/release``, or until its
timeout, so the test waits for the state it needs instead of guessing a delay. ``GET /stub/stats`` reports
``requests``, ``processing``, ``held``, ``peak_held``, ``hold_timeouts`` and ``by_path`` as JSON.

Run it::

    python -m ebbtide.testing.stub_engine --port 9000 [--chunks 16] [--delay-ms 0] [--chunk-delay-ms 0]

and point a pool at it with ``engine: {kind: openai, url: http://127.0.0.1:9000/v1}``. In-process (tests)::

    async with stub_server(chunks=4) as base_url: ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Hold", "StubConfig", "StubStats", "create_stub_app", "main", "spawn_stub", "stub_server"]

WORD = "stub"
_MAX_CACHED_BODIES = 256


@dataclass(frozen=True, slots=True)
class StubConfig:
    chunks: int = 16
    delay_ms: float = 0.0  # before the first byte (a fixed "TTFT")
    chunk_delay_ms: float = 0.0  # between streamed chunks
    model: str = "stub"


@dataclass
class StubStats:
    requests: int = 0
    processing: int = 0
    prompt_tokens: int = 0
    predicted_tokens: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    held: int = 0  # completions waiting now for POST /stub/release
    peak_held: int = 0
    hold_timeouts: int = 0  # held completions that gave up waiting (a test that never released)


@dataclass
class Hold:
    """While ``gate`` is set, new completions wait on it (at most ``timeout_s``) before they finish."""

    gate: asyncio.Event | None = None
    timeout_s: float = 60.0


STATS: web.AppKey[StubStats] = web.AppKey("stub_stats", StubStats)
CONFIG: web.AppKey[StubConfig] = web.AppKey("stub_config", StubConfig)
HOLD: web.AppKey[Hold] = web.AppKey("stub_hold", Hold)
# Canned bodies by (kind, model, n, stream): rendering JSON per request would make the stub, not the gateway,
# the bottleneck of a benchmark.
BODIES: web.AppKey[dict[tuple[str, str, int, bool], bytes]] = web.AppKey("stub_bodies", dict)


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}
    return web.json_response(body, status=status)


def _render(kind: str, model: str, n: int, stream: bool) -> bytes:
    created = int(time.time())
    ident = "stub-0"
    if not stream:
        text = " ".join([WORD] * n)
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            if kind == "chat"
            else {"index": 0, "text": text, "finish_reason": "length"}
        )
        obj = "chat.completion" if kind == "chat" else "text_completion"
        usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
        return json.dumps({"id": ident, "object": obj, "created": created, "model": model,
                           "choices": [choice], "usage": usage}).encode()
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    parts = []
    for i in range(n):
        last = i == n - 1
        piece = (" " if i else "") + WORD
        delta: dict[str, Any] = (
            {"index": 0, "delta": {"content": piece}, "finish_reason": "length" if last else None}
            if kind == "chat"
            else {"index": 0, "text": piece, "finish_reason": "length" if last else None}
        )
        chunk = {"id": ident, "object": obj, "created": created, "model": model, "choices": [delta]}
        parts.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def _body(app: web.Application, kind: str, model: str, n: int, stream: bool) -> bytes:
    cache = app[BODIES]
    key = (kind, model, n, stream)
    body = cache.get(key)
    if body is None:
        if len(cache) >= _MAX_CACHED_BODIES:
            cache.clear()
        body = cache[key] = _render(kind, model, n, stream)
    return body


def _completion(kind: str) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        cfg, stats = request.app[CONFIG], request.app[STATS]
        stats.requests += 1
        stats.by_path[request.path] = stats.by_path.get(request.path, 0) + 1
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return _error(400, "body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "body must be a JSON object")
        max_tokens = payload.get("max_tokens")
        n = cfg.chunks
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 1:
            n = min(n, max_tokens)
        model = payload.get("model") if isinstance(payload.get("model"), str) else cfg.model
        stream = payload.get("stream") is True
        stats.processing += 1
        try:
            if cfg.delay_ms:
                await asyncio.sleep(cfg.delay_ms / 1000)
            stats.prompt_tokens += 1
            stats.predicted_tokens += n
            if not stream:
                await _wait_if_held(request.app)
                return web.Response(body=_body(request.app, kind, str(model), n, False),
                                    content_type="application/json")
            return await _stream(request, _body(request.app, kind, str(model), n, True), cfg.chunk_delay_ms)
        finally:
            stats.processing -= 1

    return handle


async def _stream(request: web.Request, body: bytes, chunk_delay_ms: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    events = body.split(b"\n\n")[:-1]
    for i, event in enumerate(events):
        await response.write(event + b"\n\n")
        if i == 0:
            await _wait_if_held(request.app)
        if chunk_delay_ms:
            await asyncio.sleep(chunk_delay_ms / 1000)
    await response.write_eof()
    return response


async def _wait_if_held(app: web.Application) -> None:
    hold, stats = app[HOLD], app[STATS]
    if hold.gate is None:
        return
    stats.held += 1
    stats.peak_held = max(stats.peak_held, stats.held)
    try:
        await asyncio.wait_for(hold.gate.wait(), hold.timeout_s)
    except TimeoutError:
        stats.hold_timeouts += 1
    finally:
        stats.held -= 1


async def _hold(request: web.Request) -> web.Response:
    hold = request.app[HOLD]
    raw = await request.read()
    try:
        timeout_s = json.loads(raw).get("timeout_s", 60.0) if raw else 60.0
    except (ValueError, AttributeError):
        return _error(400, 'body must be a JSON object like {"timeout_s": 60}')
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
        return _error(400, f"timeout_s = {timeout_s!r}: must be a number > 0")
    hold.timeout_s = float(timeout_s)
    if hold.gate is None:
        hold.gate = asyncio.Event()
    return web.json_response({"holding": True, "timeout_s": hold.timeout_s})


async def _release(request: web.Request) -> web.Response:
    hold = request.app[HOLD]
    if hold.gate is not None:
        hold.gate.set()
        hold.gate = None
    return web.json_response({"holding": False, "released": request.app[STATS].held})


async def _stats(request: web.Request) -> web.Response:
    s = request.app[STATS]
    return web.json_response({"requests": s.requests, "processing": s.processing, "held": s.held,
                              "peak_held": s.peak_held, "hold_timeouts": s.hold_timeouts, "by_path": s.by_path})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _models(request: web.Request) -> web.Response:
    model = request.app[CONFIG].model
    data = [{"id": model, "object": "model", "owned_by": "stub"}]
    return web.json_response({"object": "list", "data": data})


async def _metrics(request: web.Request) -> web.Response:
    s = request.app[STATS]
    lines = [
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.",
        "# TYPE llamacpp:prompt_tokens_total counter",
        f"llamacpp:prompt_tokens_total {s.prompt_tokens}",
        "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.",
        "# TYPE llamacpp:tokens_predicted_total counter",
        f"llamacpp:tokens_predicted_total {s.predicted_tokens}",
        "# HELP llamacpp:requests_processing Number of requests processing.",
        "# TYPE llamacpp:requests_processing gauge",
        f"llamacpp:requests_processing {s.processing}",
        "# HELP llamacpp:requests_deferred Number of requests deferred.",
        "# TYPE llamacpp:requests_deferred gauge",
        "llamacpp:requests_deferred 0",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def create_stub_app(config: StubConfig | None = None) -> web.Application:
    cfg = config or StubConfig()
    if cfg.chunks < 1:
        raise ValueError(f"chunks = {cfg.chunks}: must be >= 1")
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[CONFIG] = cfg
    app[STATS] = StubStats()
    app[BODIES] = {}
    app[HOLD] = Hold()
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/v1/chat/completions", _completion("chat"))
    app.router.add_post("/v1/completions", _completion("completions"))
    app.router.add_post("/stub/hold", _hold)
    app.router.add_post("/stub/release", _release)
    app.router.add_get("/stub/stats", _stats)
    return app


@asynccontextmanager
async def stub_server(config: StubConfig | None = None, port: int = 0) -> AsyncIterator[str]:
    """Serve the stub on 127.0.0.1 (a free port by default) in the running loop; yields its base URL."""
    runner = web.AppRunner(create_stub_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def spawn_stub(
    port: int, *, chunks: int = 16, delay_ms: float = 0.0, chunk_delay_ms: float = 0.0,
    timeout_s: float = 20.0, cpu: int | None = None,
) -> Iterator[str]:
    """Run the stub as its own process (own event loop and core) until the block ends; yields its base URL.

    ``cpu`` pins it to one core (Linux), so a benchmark's client and server do not trade places.
    """
    argv = [sys.executable, "-m", "ebbtide.testing.stub_engine", "--port", str(port), "--chunks", str(chunks),
            "--delay-ms", str(delay_ms), "--chunk-delay-ms", str(chunk_delay_ms)]
    if cpu is not None and sys.platform == "linux":
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"stub engine exited {proc.returncode}: {err}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"stub engine not healthy on {url} after {timeout_s} s")
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


async def _serve_forever(config: StubConfig, host: str, port: int) -> None:
    runner = web.AppRunner(create_stub_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"stub engine (not a model) on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ebbtide.testing.stub_engine",
                                     description="A stub OpenAI-compatible engine that answers at once.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chunks", type=int, default=16, help="SSE chunks per streamed answer (default 16).")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="Wait before the first byte.")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="Wait between streamed chunks.")
    parser.add_argument("--model", default="stub", help="Model id listed by /v1/models.")
    args = parser.parse_args(argv)
    config = StubConfig(args.chunks, args.delay_ms, args.chunk_delay_ms, args.model)
    try:
        import uvloop

        uvloop.run(_serve_forever(config, args.host, args.port))
    except ImportError:  # the stub stays usable without the gateway's extras
        asyncio.run(_serve_forever(config, args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
