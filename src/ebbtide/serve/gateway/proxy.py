"""Forward one OpenAI request: take a free slot or be admitted to the queue, send to the chosen replica, stream back,
retry before the first byte.

A request that cannot start at once (others waiting, or no free slot) is judged by ``core.queueing.admit``
(``serve/gateway/admission.py``): 429/503 + Retry-After at once, or it waits; still waiting at its deadline → 503.
A replica failing before the first byte is sent to the client means the request is retried on another replica;
once bytes have been streamed it cannot be (the client sees an SSE error event, then the stream ends).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ebbtide.serve.control.runtime import PoolRuntime, Runtime
from ebbtide.serve.gateway.admission import check_admission, queue_timeout, record_slot_time
from ebbtide.serve.gateway.auth import ANONYMOUS, Caller
from ebbtide.serve.gateway.broker import ANY, Arm, QueueFull, Replica
from ebbtide.serve.gateway.errors import ApiError
from ebbtide.serve.gateway.upstream import UpstreamError, UpstreamReply

__all__ = ["OUTPUT_TOKENS", "forward"]

OUTPUT_TOKENS = web.ResponseKey("output_tokens", int)  # what the answer used, for the tenant's quota



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
    clock = runtime.clock
    started = clock.monotonic()
    gw = runtime.cfg.gateway
    deadline_s = _deadline(request, gw.default_deadline_s)
    stream = bool(payload.get("stream", False))
    pr.arrivals_total += 1
    pr.last_arrival_s = runtime.policy_clock.now()
    excluded: frozenset[str] = frozenset()
    code = 500
    try:
        for attempt in range(gw.retries + 1):
            replica = await _acquire(runtime, pr, deadline_s, started, excluded, caller, arm, attempt == 0)
            acquired = clock.monotonic()
            try:
                body = _for_engine(pr, replica, payload, raw)
                outcome = await _send(request, runtime, replica, path, body, stream, started)
                code = outcome.status
                record_slot_time(pr, clock.monotonic() - acquired)
                _observe(runtime, pr, outcome, started, stream)
                if pr.rollout is not None:
                    pr.rollout.record(replica.variant, clock.monotonic() - started, code < 500)
                outcome.response[OUTPUT_TOKENS] = outcome.output_tokens
                return outcome.response
            except _BeforeFirstByte as exc:
                if pr.rollout is not None:
                    pr.rollout.record(replica.variant, clock.monotonic() - started, False)
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
        if clock.monotonic() - started > runtime.cfg.slo.latency_p95_s:
            pr.late_total += 1
        runtime.metrics.requests.labels(pr.spec.name, str(code)).inc()


def _for_engine(pr: PoolRuntime, replica: Replica, payload: dict[str, Any], raw: bytes) -> bytes:
    upstream_model = pr.fleet.engine_of(replica).upstream_model(payload["model"])
    return raw if upstream_model is None else json.dumps({**payload, "model": upstream_model}).encode()


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


async def _acquire(
    runtime: Runtime, pr: PoolRuntime, deadline_s: float, started: float, excluded: frozenset[str],
    caller: Caller, arm: Arm, arriving: bool,
) -> Replica:
    """A free slot at once; else (on arrival) admission decides, then the request waits in the fair queue.
    Nothing awaits between the check and joining the queue, so the verdict holds for what the queue does."""
    broker = pr.fleet.broker
    replica = broker.try_acquire(excluded, arm)
    if replica is not None:
        return replica
    if not pr.fleet.has_ready() and pr.fleet.desired == 0:
        runtime.poke(pr)  # scale from zero now, not at the next tick (even if this request is refused)
    if arriving:
        check_admission(runtime, pr, deadline_s, caller.priority_class)
    wait_s = deadline_s - (runtime.clock.monotonic() - started)
    try:
        return await broker.acquire(max(wait_s, 0.0), excluded, caller.tenant, caller.priority_class, arm)
    except QueueFull as exc:  # the queue was full (a retry), or this waiter was shed for a higher class
        raise ApiError(429, f"pool {pr.spec.name!r}: {exc}", "queue_full",
                       retry_after_s=max(1.0, runtime.service_s(pr))) from None
    except TimeoutError:
        raise queue_timeout(runtime, pr) from None


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
        return await _streamed(request, runtime, upstream, replica, started)
    finally:
        upstream.release()


async def _buffered(upstream: UpstreamReply, replica: Replica) -> _Outcome:
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


async def _streamed(
    request: web.Request, runtime: Runtime, upstream: UpstreamReply, replica: Replica, started: float
) -> _Outcome:
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
                outcome.ttft_s = runtime.clock.monotonic() - started
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
    m.duration.labels(name).observe(runtime.clock.monotonic() - started)
    if stream and outcome.ttft_s is not None:
        m.ttft.labels(name).observe(outcome.ttft_s)
    if outcome.output_tokens:
        m.output_tokens.labels(name).inc(outcome.output_tokens)
        pr.output_tokens_total += outcome.output_tokens
