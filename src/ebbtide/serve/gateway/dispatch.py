"""Per-request policy before proxying: tenant quota, then primary pool or its fallback (graceful degradation)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ebbtide.serve.control.runtime import PoolRuntime, Runtime
from ebbtide.serve.gateway.admission import overflows
from ebbtide.serve.gateway.auth import Caller
from ebbtide.serve.gateway.broker import ANY
from ebbtide.serve.gateway.proxy import OUTPUT_TOKENS, forward

__all__ = ["choose_pool", "dispatch", "estimate_tokens"]

DEFAULT_MAX_TOKENS = 256


def estimate_tokens(payload: dict[str, Any], raw: bytes) -> int:
    """Quota reservation before the answer is known: prompt (~4 bytes/token) + requested output."""
    out = payload.get("max_tokens") or payload.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    return len(raw) // 4 + int(out)


def choose_pool(runtime: Runtime, pr: PoolRuntime, caller: Caller) -> PoolRuntime:
    """The fallback pool when ``core.queueing.should_overflow`` says the primary's wait would break the SLO and new
    capacity cannot arrive in time (for the classes the pool lets overflow); otherwise the primary."""
    spec = pr.spec
    if spec.fallback is None or caller.priority_class not in spec.fallback_classes:
        return pr
    return runtime.pools[spec.fallback] if overflows(runtime, pr) else pr


async def dispatch(
    request: web.Request, runtime: Runtime, pr: PoolRuntime, caller: Caller, path: str,
    payload: dict[str, Any], raw: bytes,
) -> web.StreamResponse:
    reserved = estimate_tokens(payload, raw)
    runtime.gatekeeper.admit(caller, reserved)
    used = 0
    try:
        target = choose_pool(runtime, pr, caller)
        if target is not pr:
            runtime.metrics.fallbacks.labels(pr.spec.name, target.spec.name).inc()
        rollout = target.rollout
        arm = rollout.arm() if rollout is not None else ANY
        if rollout is not None and rollout.want_shadow() and runtime.session is not None:
            rollout.mirror(runtime.session, path, raw)
        response = await forward(request, runtime, target, path, payload, raw, caller, arm)
        used = response.get(OUTPUT_TOKENS, 0) + len(raw) // 4
        return response
    finally:
        runtime.gatekeeper.settle(caller, reserved, used)
