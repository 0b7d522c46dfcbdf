"""What the gateway tells a request that cannot start at once, and whether it goes to the fallback pool.

The rules are ``core.queueing``'s, the ones the twin runs: the pool is described as a ``Backlog`` (queue depth,
ready replicas and slots, the EWMA of slot time, when the next starting replica should be ready) and ``admit``
answers 429 (queue full, or replicas ready but the wait misses the deadline), 503 (no ready replica in time) or
"wait"; ``should_overflow`` picks the fallback pool. Usage::

    check_admission(runtime, pr, deadline_s, caller.priority_class)   # raises ApiError when refused
"""

from __future__ import annotations

from ebbtide.core.queueing import QUEUE_TIMEOUT_STATUS, Admission, Backlog, admit, ewma, should_overflow
from ebbtide.core.signals import ReplicaState
from ebbtide.serve.control.runtime import PoolRuntime, Runtime
from ebbtide.serve.gateway.errors import ApiError

__all__ = ["backlog", "can_grow", "check_admission", "overflows", "queue_timeout", "record_slot_time"]


def backlog(runtime: Runtime, pr: PoolRuntime) -> Backlog:
    ready = [r for r in pr.fleet.live_replicas() if r.state is ReplicaState.READY]
    return Backlog(pr.fleet.broker.queue_depth, len(ready), sum(r.slots for r in ready), runtime.service_s(pr),
                   runtime.ready_eta_s(pr))


def can_grow(pr: PoolRuntime) -> bool:
    """More capacity may come: below max replicas, or a replica is still starting."""
    return pr.fleet.desired < pr.controller.rules.max_replicas or any(
        r.state is not ReplicaState.READY for r in pr.fleet.capacity())


def check_admission(runtime: Runtime, pr: PoolRuntime, deadline_s: float, priority_class: str) -> Admission:
    """For a request that found no free slot (or others waiting): wait, or raise the refusal."""
    broker = pr.fleet.broker
    full = broker.queue_depth >= broker.max_queue
    verdict = admit(backlog(runtime, pr), broker.max_queue, deadline_s, full and broker.can_shed(priority_class))
    if not verdict.accepted:
        raise ApiError(verdict.status, f"pool {pr.spec.name!r}: {verdict.reason}", _code(verdict),
                       retry_after_s=verdict.retry_after_s)
    return verdict


def _code(verdict: Admission) -> str:
    if verdict.status == 503:
        return "cold_start"  # no ready replica can be there in time
    return "queue_full" if verdict.reason.startswith("queue full") else "wait_exceeds_deadline"


def queue_timeout(runtime: Runtime, pr: PoolRuntime) -> ApiError:
    """A request still waiting at its deadline."""
    wait = backlog(runtime, pr).wait_s()
    return ApiError(QUEUE_TIMEOUT_STATUS, f"pool {pr.spec.name!r}: no replica slot within the deadline",
                    "no_capacity", retry_after_s=max(1.0, wait))


def overflows(runtime: Runtime, pr: PoolRuntime) -> bool:
    """Send the request to the fallback pool (``core.queueing.should_overflow``)."""
    broker = pr.fleet.broker
    free = broker.queue_depth == 0 and any(
        r.state is ReplicaState.READY and r.inflight < r.slots for r in pr.fleet.live_replicas())
    if free:
        return False
    return should_overflow(backlog(runtime, pr), False, runtime.cfg.slo.latency_p95_s, can_grow(pr))


def record_slot_time(pr: PoolRuntime, held_s: float) -> None:
    pr.service_s = ewma(pr.service_s, held_s)
