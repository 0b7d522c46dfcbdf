"""Forward one OpenAI request: queue for a slot, send to the chosen replica, stream back, retry before first byte.

A replica failing before the first byte is sent to the client means the request is retried on another replica;
once bytes have been streamed it cannot be (the client sees an SSE error event, then the stream ends).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ebbtide.core.queueing import Backlog, admit
from ebbtide.serve.auth import ANONYMOUS, Caller
from ebbtide.serve.broker import ANY, Arm, QueueFull, Replica
from ebbtide.serve.errors import ApiError
from ebbtide.serve.runtime import PoolRuntime, Runtime
from ebbtide.serve.upstream import UpstreamError, UpstreamResponse

__all__ = ["forward"]



class _BeforeFirstByte(Exception):
    """The upstream failed before anything reached the client: safe to retry elsewhere."""


class _EventStream(web.StreamResponse):
    # aiohttp's opt-in (web.Response sets it too): the headers leave with the first chunk, one write less.
    _send_headers_immediately = False


@dataclass
class _Outcome:
    response: web.StreamResponse
    status: int
    output_tokens: int = 0
    ttft_s: float | None = None


async def forward(
    request: web.Request,
    runtime: Runtime,
    pr: PoolRuntime,
    path: str,
    payload: dict[str, Any],
    raw: bytes,
    caller: Caller = ANONYMOUS,
    arm: Arm = ANY,
) -> web.StreamResponse:
    started = time.monotonic()
    gw = runtime.cfg.gateway
    deadline_s = _deadline(request, gw.default_deadline_s)
    stream = bool(payload.get("stream", False))
    pr.arrivals_total += 1
    pr.last_arrival_s = runtime.policy_clock.now()
    if not pr.fleet.has_ready():
        _admit_cold(runtime, pr, deadline_s)
    excluded: frozenset[str] = frozenset()
    code = 500
    try:
        for attempt in range(gw.retries + 1):
            replica = await _acquire(pr, deadline_s - (time.monotonic() - started), excluded, caller, arm)
            try:
                body = _for_engine(pr, replica, payload, raw)
                outcome = await _send(request, runtime, replica, path, body, stream, started)
                code = outcome.status
                _observe(runtime, pr, outcome, started, stream)
                if pr.rollout is not None:
                    pr.rollout.record(replica.variant, time.monotonic() - started, code < 500)
                outcome.response["output_tokens"] = outcome.output_tokens
                return outcome.response
            except _BeforeFirstByte as exc:
                if pr.rollout is not None:
                    pr.rollout.record(replica.variant, time.monotonic() - started, False)
                excluded = excluded | {replica.replica_id}
                runtime.metrics.retries.labels(pr.spec.name).inc()
                await pr.fleet.suspect(replica)
                if attempt == gw.retries:
                    raise ApiError(502, f"replicas failed before responding: {exc}", "upstream_failed") from None
            finally:
                pr.fleet.broker.release(replica)
        raise AssertionError("unreachable")
    except ApiError as exc:
        code = exc.status
        raise
    finally:
        pr.completions_total += 1
        runtime.metrics.requests.labels(pr.spec.name, str(code)).inc()


def _for_engine(pr: PoolRuntime, replica: Replica, payload: dict[str, Any], raw: bytes) -> bytes:
    upstream_model = pr.fleet.engine_of(replica).upstream_model(payload["model"])
    return raw if upstream_model is None else json.dumps({**payload, "model": upstream_model}).encode()


def _admit_cold(runtime: Runtime, pr: PoolRuntime, deadline_s: float) -> None:
    """No ready replica: hold the request while one starts, or say 503 + Retry-After at once if it cannot be in time."""
    if pr.fleet.desired == 0:
        runtime.poke()
    eta_s = runtime.ready_eta_s(pr)
    backlog = Backlog(pr.fleet.broker.queue_depth, 0, 0, pr.service_ewma_s or 0.0, eta_s)
    verdict = admit(backlog, runtime.cfg.gateway.max_queue, deadline_s)
    if not verdict.accepted:
        pr.completions_total += 1
        runtime.metrics.requests.labels(pr.spec.name, str(verdict.status)).inc()
        raise ApiError(verdict.status, f"pool {pr.spec.name!r}: {verdict.reason}", "cold_start",
                       retry_after_s=verdict.retry_after_s)


def _deadline(request: web.Request, default_s: float) -> float:
    header = request.headers.get("X-Ebbtide-Deadline-S")
    if header is None:
        return default_s
    try:
        value = float(header)
    except ValueError:
        message = f"X-Ebbtide-Deadline-S = {header!r}: must be a number of seconds"
        raise ApiError(400, message, "invalid_header") from None
    if not 0 < value <= 86400:
        raise ApiError(400, f"X-Ebbtide-Deadline-S = {header!r}: must be in (0, 86400]", "invalid_header")
    return value


async def _acquire(pr: PoolRuntime, wait_s: float, excluded: frozenset[str], caller: Caller, arm: Arm) -> Replica:
    try:
        return await pr.fleet.broker.acquire(max(wait_s, 0.0), excluded, caller.tenant, caller.priority_class, arm)
    except QueueFull as exc:
        raise ApiError(429, f"pool {pr.spec.name!r}: {exc}", "queue_full", retry_after_s=5) from None
    except TimeoutError:
        raise ApiError(
            503, f"pool {pr.spec.name!r}: no replica slot within the deadline", "no_capacity", retry_after_s=10
        ) from None


async def _send(
    request: web.Request, runtime: Runtime, replica: Replica, path: str, raw: bytes, stream: bool, started: float
) -> _Outcome:
    try:
        upstream = await runtime.upstream.post(replica.base_url + path, raw, runtime.cfg.gateway.request_timeout_s)
    except UpstreamError as exc:
        raise _BeforeFirstByte(f"{replica.replica_id}: {exc}") from None
    try:
        if not stream or upstream.status != 200:
            return await _buffered(upstream, replica)
        return await _streamed(request, upstream, replica, started)
    finally:
        upstream.release()


async def _buffered(upstream: UpstreamResponse, replica: Replica) -> _Outcome:
    try:
        body = await upstream.read()
    except UpstreamError as exc:
        raise _BeforeFirstByte(f"{replica.replica_id}: {exc}") from None
    if upstream.status in (502, 503):
        raise _BeforeFirstByte(f"{replica.replica_id}: upstream answered {upstream.status}")
    response = web.Response(
        status=upstream.status, body=body, content_type=upstream.content_type or "application/json",
        headers={"X-Ebbtide-Replica": replica.replica_id, "X-Ebbtide-Served-By": replica.pool},
    )
    return _Outcome(response, upstream.status, _usage_tokens(body))


async def _streamed(request: web.Request, upstream: UpstreamResponse, replica: Replica, started: float) -> _Outcome:
    response = _EventStream(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Ebbtide-Replica": replica.replica_id,
            "X-Ebbtide-Served-By": replica.pool,
        },
    )
    outcome = _Outcome(response, 200)
    try:
        async for chunk in upstream:
            if outcome.ttft_s is None:
                await response.prepare(request)
                outcome.ttft_s = time.monotonic() - started
            outcome.output_tokens += chunk.count(b"data: {")
            if upstream.complete:
                await response.write_eof(chunk)  # last data and the terminating chunk in one write
            else:
                await response.write(chunk)
    except UpstreamError as exc:
        if outcome.ttft_s is None:
            raise _BeforeFirstByte(f"{replica.replica_id}: {exc}") from None
        outcome.status = 502
        error = {"error": {"message": f"replica {replica.replica_id} failed mid-stream", "type": "upstream_error",
                           "code": "upstream_failed_mid_stream"}}
        await response.write(f"data: {json.dumps(error)}\n\n".encode())
    if outcome.ttft_s is None:
        raise _BeforeFirstByte(f"{replica.replica_id}: stream ended before any byte")
    await response.write_eof()
    return outcome


def _usage_tokens(body: bytes) -> int:
    try:
        usage = json.loads(body).get("usage") or {}
        return int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0


def _observe(runtime: Runtime, pr: PoolRuntime, outcome: _Outcome, started: float, stream: bool) -> None:
    m, name = runtime.metrics, pr.spec.name
    took = time.monotonic() - started
    m.duration.labels(name).observe(took)
    pr.service_ewma_s = took if pr.service_ewma_s is None else 0.9 * pr.service_ewma_s + 0.1 * took
    if stream and outcome.ttft_s is not None:
        m.ttft.labels(name).observe(outcome.ttft_s)
    if outcome.output_tokens:
        m.output_tokens.labels(name).inc(outcome.output_tokens)
        pr.output_tokens_total += outcome.output_tokens
