"""Admission for a request that cannot start at once, the wait estimate, and the overflow-to-fallback choice.

One implementation for both drivers (``serve`` and the twin). A request that finds a free slot and nobody
waiting goes straight to a replica; otherwise the driver describes the pool as a ``Backlog`` and asks ``admit``:

- queue full → the newest waiter of a lower class is shed to make room (``shed``), else **429** + Retry-After;
- estimated wait past the request's deadline → **503** + Retry-After when no replica is ready (a cold start
  cannot make it), else **429** + Retry-After (the pool is busy: back off);
- otherwise the request waits in the fair queue (``core.fairqueue``); still waiting at its deadline → **503**.

The wait estimate assumes the busy slots free up at ``ready_slots / mean_service_s`` per second (M/M/c-like),
so the request behind ``k`` others waits about ``(k + 1) × service / slots``; at zero ready replicas it waits for
the next cold start first. ``mean_service_s`` is an EWMA (``ewma``) of how long requests held a slot.

Usage::

    verdict = admit(Backlog(queue_depth, ready, ready_slots, service_s, eta_s), max_queue, deadline_s)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "QUEUE_TIMEOUT_STATUS",
    "SERVICE_EWMA_WEIGHT",
    "Admission",
    "Backlog",
    "admit",
    "estimate_wait_s",
    "ewma",
    "ready_eta_s",
    "should_overflow",
]

QUEUE_TIMEOUT_STATUS = 503
SERVICE_EWMA_WEIGHT = 0.1


@dataclass(frozen=True, slots=True)
class Admission:
    accepted: bool
    status: int = 200
    retry_after_s: float = 0.0
    reason: str = ""
    shed: bool = False  # accepted by shedding the newest lower-class waiter


@dataclass(frozen=True, slots=True)
class Backlog:
    """The pool as a request that must wait sees it."""

    queue_depth: int
    ready_replicas: int
    ready_slots: int
    mean_service_s: float
    ready_eta_s: float = 0.0  # until the next starting replica is expected ready

    def wait_s(self) -> float:
        return estimate_wait_s(self.queue_depth, self.ready_slots, self.mean_service_s, self.ready_eta_s)


def estimate_wait_s(queue_ahead: int, ready_slots: int, mean_service_s: float, ready_eta_s: float = 0.0) -> float:
    """Expected wait for a slot behind ``queue_ahead`` waiters when every ready slot is busy."""
    if ready_slots <= 0:
        return ready_eta_s + mean_service_s * queue_ahead
    return (queue_ahead + 1) * mean_service_s / ready_slots


def admit(backlog: Backlog, max_queue: int, deadline_s: float, can_shed: bool = False) -> Admission:
    wait = backlog.wait_s()
    if backlog.queue_depth >= max_queue:
        if can_shed:
            return Admission(True, shed=True, reason="queue full: shed a lower-class waiter")
        return Admission(False, 429, max(1.0, wait), f"queue full ({backlog.queue_depth}/{max_queue})")
    if wait > deadline_s:
        if backlog.ready_replicas == 0:
            why = f"no ready replica: estimated ready in {wait:.0f}s > deadline {deadline_s:g}s"
            return Admission(False, 503, wait, why)
        return Admission(False, 429, wait, f"estimated wait {wait:.1f}s > deadline {deadline_s:g}s")
    return Admission(True)


def should_overflow(backlog: Backlog, free_slot: bool, slo_latency_s: float, can_grow: bool) -> bool:
    """Send this request to the fallback pool: the primary's wait would break the latency SLO and new
    capacity (if the primary may still grow) cannot be ready in time either."""
    if free_slot and backlog.queue_depth == 0:
        return False
    budget_s = max(0.0, slo_latency_s - backlog.mean_service_s)
    if backlog.wait_s() <= budget_s:
        return False
    return not (can_grow and backlog.ready_eta_s <= budget_s)


def ewma(previous: float | None, sample: float, weight: float = SERVICE_EWMA_WEIGHT) -> float:
    return sample if previous is None else previous + weight * (sample - previous)


def ready_eta_s(starting_since_s: Sequence[float], cold_start_s: float, now_s: float) -> float:
    """Seconds until a replica is expected ready: the oldest starting one's remaining cold start, or a whole cold
    start when none is starting."""
    if not starting_since_s:
        return cold_start_s
    return max(0.0, cold_start_s - (now_s - min(starting_since_s)))
