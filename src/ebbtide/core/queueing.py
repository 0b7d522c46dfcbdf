"""Admission to the gateway queue: accept, or reject at once with a status and a Retry-After estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Admission", "admit", "estimate_wait_s"]


@dataclass(frozen=True, slots=True)
class Admission:
    accepted: bool
    status: int = 200
    retry_after_s: float = 0.0
    reason: str = ""


def estimate_wait_s(
    queue_ahead: int, ready_slots: int, mean_service_s: float, ready_eta_s: float = 0.0
) -> float:
    """Expected wait for the request behind ``queue_ahead`` others: batches of ``ready_slots`` drain per service time.

    With no ready slot the wait starts with the time until one is expected (``ready_eta_s``, e.g. a cold start).
    """
    if ready_slots <= 0:
        # The request waits for a slot, not for its own service: nobody ahead = just the cold start.
        return ready_eta_s + mean_service_s * queue_ahead
    return mean_service_s * math.floor(queue_ahead / ready_slots)


def admit(
    queue_depth: int,
    max_queue: int,
    estimated_wait_s: float = 0.0,
    deadline_s: float = math.inf,
    ready_replicas: int = 1,
) -> Admission:
    if queue_depth >= max_queue:
        return Admission(False, 429, max(1.0, estimated_wait_s), f"queue full ({queue_depth}/{max_queue})")
    if estimated_wait_s > deadline_s:
        reason = (
            f"no ready replica: estimated ready in {estimated_wait_s:.0f}s > deadline {deadline_s:g}s"
            if ready_replicas == 0
            else f"estimated wait {estimated_wait_s:.1f}s > deadline {deadline_s:g}s"
        )
        return Admission(False, 503 if ready_replicas == 0 else 429, estimated_wait_s, reason)
    return Admission(True)
