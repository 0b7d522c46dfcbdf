"""Per-request policy before proxying: tenant quota, then primary pool or its fallback (graceful degradation)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ebbtide.core.queueing import estimate_wait_s
from ebbtide.core.signals import ReplicaState
from ebbtide.serve.auth import Caller
from ebbtide.serve.broker import ANY
from ebbtide.serve.proxy import forward
from ebbtide.serve.runtime import PoolRuntime, Runtime

__all__ = ["choose_pool", "dispatch", "estimate_tokens"]

DEFAULT_MAX_TOKENS = 256


def estimate_tokens(payload: dict[str, Any], raw: bytes) -> int:
    """Quota reservation before the answer is known: prompt (~4 bytes/token) + requested output."""
    out = payload.get("max_tokens") or payload.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    return len(raw) // 4 + int(out)


def choose_pool(runtime: Runtime, pr: PoolRuntime, caller: Caller) -> PoolRuntime:
    """The fallback pool when the primary's estimated wait would break the SLO and new capacity cannot arrive in
    time; otherwise the primary."""
    spec = pr.spec
    if spec.fallback is None or caller.priority_class not in spec.fallback_classes:
        return pr
    ready = [r for r in pr.fleet.live_replicas() if r.state is ReplicaState.READY]
    if pr.fleet.broker.queue_depth == 0 and any(r.inflight < r.slots for r in ready):
        return pr
    slo_s = runtime.cfg.slo.latency_p95_s
    service_s = pr.service_ewma_s if pr.service_ewma_s is not None else slo_s / 2
    budget_s = max(0.0, slo_s - service_s)
    slots = sum(r.slots for r in ready)
    if slots:
        wait_s = service_s * (pr.fleet.broker.queue_depth // slots + 0.5)
    else:
        wait_s = estimate_wait_s(pr.fleet.broker.queue_depth, 0, service_s, runtime.ready_eta_s(pr))
    if wait_s <= budget_s:
        return pr
    can_grow = pr.fleet.desired < pr.controller.rules.max_replicas or any(
        r.state is not ReplicaState.READY for r in pr.fleet.capacity()
    )
    if can_grow and runtime.ready_eta_s(pr) <= budget_s:
        return pr
    return runtime.pools[spec.fallback]


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
        used = int(response.get("output_tokens", 0)) + len(raw) // 4
        return response
    finally:
        runtime.gatekeeper.settle(caller, reserved, used)
