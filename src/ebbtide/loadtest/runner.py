"""The open-loop client: send each request at its arrival time whatever the earlier ones are doing.

A closed loop (N users waiting for their answers) slows down when the server does and hides queueing; here a
slow server only grows the number in flight, up to ``max_inflight`` (beyond it arrivals are counted as
``dropped``, so an overloaded *client* shows in the report instead of silently becoming a closed loop).
Bounded in time: arrivals stop at the schedule's end, then answers get at most ``drain_s`` before the rest are
cancelled and counted as ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from ebbtide.loadtest.arrivals import Arrival
from ebbtide.loadtest.report import Outcome

__all__ = ["LoadOptions", "RequestResult", "endpoint_url", "engine_ms_per_token", "run_load"]

TAIL_BYTES = 4096  # a stream's last events: [DONE] and the engine's timings

RequestResult = Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """What to send and the run's hard limits. ``url`` is the server's base (with or without ``/v1``)."""

    url: str
    model: str = "default"
    stream: bool = True
    endpoint: str = "chat"  # chat | completions
    max_prompt_tokens: int = 512
    max_output_tokens: int = 128
    request_timeout_s: float = 60.0
    drain_s: float = 30.0
    max_inflight: int = 2000
    api_key: str | None = None


def endpoint_url(base: str, endpoint: str) -> str:
    root = base.rstrip("/").removesuffix("/v1")
    return root + ("/v1/chat/completions" if endpoint == "chat" else "/v1/completions")


def _body(opts: LoadOptions, arrival: Arrival) -> bytes:
    # ~1 token per repeated short word; engines count differently, but the stub and the gateway do not care.
    prompt = "hi " * max(1, min(arrival.prompt_tokens, opts.max_prompt_tokens))
    payload: dict[str, object] = {
        "model": opts.model,
        "max_tokens": max(1, min(arrival.output_tokens, opts.max_output_tokens)),
        "stream": opts.stream,
    }
    if opts.endpoint == "chat":
        payload["messages"] = [{"role": "user", "content": prompt}]
    else:
        payload["prompt"] = prompt
    return json.dumps(payload).encode()


def engine_ms_per_token(tail: bytes) -> float | None:
    """The engine's own decode time per output token, from the ``timings`` llama.cpp puts in a stream's last
    event (None for engines that do not report it)."""
    for line in tail.split(b"\n"):
        if line.startswith(b"data: ") and b'"timings"' in line:
            try:
                value = (json.loads(line[6:]).get("timings") or {}).get("predicted_per_token_ms")
            except (ValueError, AttributeError):
                return None
            return float(value) if isinstance(value, int | float) and value > 0 else None
    return None


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stream: bool,
    arrival: Arrival, lateness_s: float, clock: Callable[[], float],
) -> Outcome:
    sent = clock()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if not (stream and resp.status == 200):
                await resp.read()
                return Outcome(str(resp.status), arrival.at_s, lateness_s, clock() - sent)
            ttft: float | None = None
            chunks, tail = 0, b""
            async for data in resp.content.iter_any():
                if ttft is None:
                    ttft = clock() - sent
                chunks += data.count(b"data: ")
                tail = (tail + data)[-TAIL_BYTES:]
            # The gateway reports a replica lost mid-stream as an SSE error event on a 200: count it apart.
            code = "200" if b"[DONE]" in tail else "incomplete_stream"
            return Outcome(code, arrival.at_s, lateness_s, clock() - sent, ttft, chunks, engine_ms_per_token(tail))
    except TimeoutError:
        return Outcome("timeout", arrival.at_s, lateness_s)
    except aiohttp.ClientError as exc:
        return Outcome(f"error:{type(exc).__name__}", arrival.at_s, lateness_s)


async def run_load(
    arrivals: Sequence[Arrival], opts: LoadOptions, clock: Callable[[], float] = time.monotonic
) -> tuple[list[Outcome], float]:
    """Send ``arrivals`` on schedule; returns every request's outcome and the wall time the run took."""
    url = endpoint_url(opts.url, opts.endpoint)
    headers = {"Content-Type": "application/json"}
    if opts.api_key:
        headers["Authorization"] = f"Bearer {opts.api_key}"
    outcomes: list[Outcome] = []
    pending: dict[asyncio.Task[Outcome], Arrival] = {}

    def finished(task: asyncio.Task[Outcome]) -> None:
        pending.pop(task, None)
        if not task.cancelled():
            outcomes.append(task.result())

    timeout = aiohttp.ClientTimeout(total=opts.request_timeout_s, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=opts.max_inflight)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = clock()
        for arrival in arrivals:
            delay = t0 + arrival.at_s - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= opts.max_inflight:
                outcomes.append(Outcome("dropped", arrival.at_s))
                continue
            lateness = max(0.0, clock() - t0 - arrival.at_s)
            task = asyncio.create_task(
                _one(session, url, _body(opts, arrival), headers, opts.stream, arrival, lateness, clock)
            )
            pending[task] = arrival
            task.add_done_callback(finished)
        if pending:
            await asyncio.wait(list(pending), timeout=opts.drain_s)
        for task, arrival in list(pending.items()):
            task.remove_done_callback(finished)
            task.cancel()
            outcomes.append(Outcome("timeout", arrival.at_s))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        elapsed = clock() - t0
    outcomes.sort(key=lambda o: o.scheduled_s)
    return outcomes, elapsed
