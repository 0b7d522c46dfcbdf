"""The llama.cpp worker as a real process (tiny random GGUF; the embedded Gemma in the slow test)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ebbtide.config import LlamaCppEngineSpec
from ebbtide.engines import Health, LlamaCppEngine
from ebbtide.engines.llamacpp_worker import EXIT_BAD_ARGS, EXIT_LEASE_EXPIRED, EXIT_LOAD_FAILED
from ebbtide.engines.models import resolve_model_path

StartWorker = Callable[..., Any]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _engine() -> LlamaCppEngine:
    return LlamaCppEngine(LlamaCppEngineSpec(), Path("unused.gguf"), health_timeout_s=1.0)


async def _wait_ready(session: aiohttp.ClientSession, worker: Any, timeout_s: float = 30.0) -> list[Health]:
    """Poll health until READY; returns the distinct states seen in order. Fails if the worker dies."""
    seen: list[Health] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = await _engine().health(session, worker.base_url)
        if not seen or seen[-1] is not state:
            seen.append(state)
        if state is Health.READY:
            return seen
        assert worker.proc.poll() is None, f"worker exited {worker.proc.returncode}: {worker.stderr()}"
        await asyncio.sleep(0.02)
    raise AssertionError(f"not ready within {timeout_s}s (seen {seen}): {worker.stderr()}")


async def _wait_exit(worker: Any, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = worker.proc.poll()
        if code is not None:
            return int(code)
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker still running after {timeout_s}s")


def _port_is_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def _stream(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[Any]:
    events: list[Any] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with session.post(url, json={**body, "stream": True}, timeout=timeout) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                payload = line.removeprefix("data: ")
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


async def test_worker_becomes_ready_and_serves_chat(worker_process: StartWorker,
                                                    session: aiohttp.ClientSession) -> None:
    worker = worker_process(slots=2)
    seen = await _wait_ready(session, worker)
    assert seen[-1] is Health.READY
    assert set(seen[:-1]) <= {Health.DOWN, Health.LOADING}

    body = {"model": "whatever", "messages": [{"role": "user", "content": "hello tide"}], "max_tokens": 7}
    data = await _post(session, f"{worker.base_url}/v1/chat/completions", body)
    assert data["object"] == "chat.completion"
    assert data["usage"]["completion_tokens"] == 7
    assert data["choices"][0]["finish_reason"] == "length"
    assert isinstance(data["choices"][0]["message"]["content"], str)

    events = await _stream(session, f"{worker.base_url}/v1/chat/completions", {**body, "max_tokens": 5})
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) == 5
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_completions_respect_max_tokens_and_show_in_metrics(worker_process: StartWorker,
                                                                  session: aiohttp.ClientSession) -> None:
    worker = worker_process(slots=1)
    await _wait_ready(session, worker)
    url = f"{worker.base_url}/v1/completions"
    data = await _post(session, url, {"prompt": "the sea", "max_tokens": 9})
    assert data["usage"]["completion_tokens"] == 9
    events = await _stream(session, url, {"prompt": "the sea", "max_tokens": 4})
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens"] == 4

    async with session.get(f"{worker.base_url}/metrics") as resp:
        assert resp.status == 200
        stats = _engine().parse_metrics(await resp.text())
    assert stats.generation_tokens_total == 13
    assert stats.prompt_tokens_total is not None and stats.prompt_tokens_total > 0
    assert stats.requests_running == 0
    assert stats.requests_waiting == 0


async def test_extra_args_reach_llama_cpp(worker_process: StartWorker,
                                          session: aiohttp.ClientSession) -> None:
    worker = worker_process(extra=["n_predict=3", "cache_prompt=false"])
    await _wait_ready(session, worker)
    url = f"{worker.base_url}/v1/completions"
    first = await _post(session, url, {"prompt": "the tide and the moon"})
    again = await _post(session, url, {"prompt": "the tide and the moon"})
    assert first["usage"]["completion_tokens"] == 3
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_the_worker_cleanly(worker_process: StartWorker, session: aiohttp.ClientSession,
                                               sig: signal.Signals) -> None:
    worker = worker_process()
    await _wait_ready(session, worker)
    # /health answers a moment before the worker takes over SIGTERM/SIGINT; its "ready in" line says it has
    deadline = time.monotonic() + 30.0
    while "ready in" not in worker.stderr():
        assert time.monotonic() < deadline, f"no 'ready in' line: {worker.stderr()}"
        await asyncio.sleep(0.02)
    worker.proc.send_signal(sig)
    assert await _wait_exit(worker, 10.0) == 0
    assert _port_is_closed(worker.port)
    assert await _engine().health(session, worker.base_url) is Health.DOWN


async def test_worker_exits_by_itself_when_its_lease_is_not_renewed(
    worker_process: StartWorker, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    lease = tmp_path / "lease"
    lease.touch()
    worker = worker_process(lease=lease, lease_timeout_s=1.0)
    await _wait_ready(session, worker)
    renew_until = time.monotonic() + 2.0
    while time.monotonic() < renew_until:
        last_touch = time.monotonic()
        lease.touch()
        assert worker.proc.poll() is None, "worker quit while its lease was being renewed"
        await asyncio.sleep(0.1)
    code = await _wait_exit(worker, 1.0 + 2.0)
    assert code == EXIT_LEASE_EXPIRED
    assert time.monotonic() - last_touch >= 0.95, "quit before the lease timeout (mtime is coarse by ~10 ms)"
    assert _port_is_closed(worker.port)
    assert "lease" in worker.stderr()


async def test_worker_exits_when_its_lease_file_is_removed(
    worker_process: StartWorker, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    lease = tmp_path / "lease"
    lease.touch()
    worker = worker_process(lease=lease, lease_timeout_s=60.0)
    await _wait_ready(session, worker)
    lease.unlink()
    assert await _wait_exit(worker, 3.0) == EXIT_LEASE_EXPIRED


async def test_unknown_extra_arg_is_a_usage_error(worker_process: StartWorker) -> None:
    worker = worker_process(extra=["no_such_knob=1"])
    assert await _wait_exit(worker, 30.0) == EXIT_BAD_ARGS
    assert "unknown llama.cpp parameter 'no_such_knob'" in worker.stderr()


async def test_unloadable_model_exits_with_load_failure(worker_process: StartWorker, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    worker = worker_process(model=bad)
    assert await _wait_exit(worker, 30.0) == EXIT_LOAD_FAILED
    assert "failed to start" in worker.stderr()


@pytest.mark.slow
async def test_embedded_gemma_loads_and_completes(worker_process: StartWorker,
                                                  session: aiohttp.ClientSession) -> None:
    worker = worker_process(model=resolve_model_path("default"), slots=1, ctx_per_slot=1024)
    started = time.monotonic()
    seen = await _wait_ready(session, worker, timeout_s=120.0)
    load_s = time.monotonic() - started
    assert Health.LOADING in seen, seen
    assert seen[-1] is Health.READY
    body = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
    data = await _post(session, f"{worker.base_url}/v1/chat/completions", body)
    assert 1 <= data["usage"]["completion_tokens"] <= 8
    print(f"embedded model ready in {load_s:.2f}s")


async def test_sigterm_ends_the_worker_at_once_even_with_open_streams(
    worker_process: StartWorker, session: aiohttp.ClientSession
) -> None:
    worker = worker_process(slots=1, ctx_per_slot=4096)
    await _wait_ready(session, worker)
    body = {"prompt": "the", "max_tokens": 4000, "stream": True}
    async with session.post(f"{worker.base_url}/v1/completions", json=body) as resp:
        assert resp.status == 200
        await resp.content.readline()
        worker.proc.send_signal(signal.SIGTERM)
        assert await _wait_exit(worker, 3.0) == 0
    assert _port_is_closed(worker.port)


@pytest.mark.slow
async def test_sigterm_during_model_load_kills_the_worker_promptly(
    worker_process: StartWorker, session: aiohttp.ClientSession
) -> None:
    worker = worker_process(model=resolve_model_path("default"), slots=1)
    deadline = time.monotonic() + 60.0
    while await _engine().health(session, worker.base_url) is not Health.LOADING:
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.stderr()
        await asyncio.sleep(0.02)
    worker.proc.send_signal(signal.SIGTERM)
    assert await _wait_exit(worker, 2.0) == -signal.SIGTERM
