"""Admission to the gateway queue (DESIGN §4 scale to zero, §5 error contract) and the wait estimate."""

from __future__ import annotations

import math

import pytest

from ebbtide.core.queueing import admit, estimate_wait_s


@pytest.mark.parametrize(
    ("queue", "max_queue", "wait", "deadline", "ready", "accepted", "status"),
    [
        (999, 1000, 0.0, math.inf, 1, True, 200),  # one place left
        (1000, 1000, 0.0, math.inf, 1, False, 429),  # queue full → 429 + Retry-After
        (0, 10, 5.0, 5.0, 0, True, 200),  # ready exactly at the deadline: hold the request
        (0, 10, 5.5, 5.0, 0, False, 503),  # no ready replica and the cold start misses the deadline → 503
        (3, 10, 7.0, 5.0, 2, False, 429),  # replicas ready but the wait misses the deadline → 429 (pinned)
    ],
)
def test_admit(
    queue: int, max_queue: int, wait: float, deadline: float, ready: int, accepted: bool, status: int
) -> None:
    """DESIGN §5: 429 when the queue is full (+ Retry-After); 503 + Retry-After when no capacity can be ready
    within the deadline. DESIGN §4 / issue 4 item 3: a request at zero replicas is held unless the estimated
    ready time is past its deadline. Both sides of each threshold."""
    a = admit(queue, max_queue, wait, deadline, ready)
    assert (a.accepted, a.status) == (accepted, status)
    if not accepted:
        assert a.retry_after_s == (max(1.0, wait) if queue >= max_queue else wait)
        assert a.reason


def test_retry_after_is_at_least_one_second_when_full() -> None:
    """Retry-After is an integer number of seconds ≥ 1 in HTTP (RFC 9110 §10.2.3); the estimate is floored at
    1.
    """
    assert admit(5, 5, 0.0).retry_after_s == 1.0
    assert admit(5, 5, 12.5).retry_after_s == 12.5


@pytest.mark.parametrize(
    ("ahead", "slots", "service", "eta", "expected"),
    [
        (0, 4, 2.0, 0.0, 0.0),  # a free slot now
        (3, 4, 2.0, 0.0, 0.0),  # 3 ahead, 4 slots: served in the first batch
        (4, 4, 2.0, 0.0, 2.0),  # the 5th waits one service time
        (9, 4, 2.0, 0.0, 4.0),
        (0, 0, 2.0, 5.0, 5.0),  # at zero: the cold start only (fixed in core)
        (2, 0, 2.0, 5.0, 9.0),  # at zero with 2 ahead, served one at a time after the cold start
    ],
)
def test_estimate_wait(ahead: int, slots: int, service: float, eta: float, expected: float) -> None:
    """Wait for a slot (GatewaySpec.default_deadline_s: "longest a request waits for a slot"): batches of the
    ready slots drain once per mean service time; at zero replicas the wait starts with the cold-start ETA."""
    assert estimate_wait_s(ahead, slots, service, eta) == pytest.approx(expected)
