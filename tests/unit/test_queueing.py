"""Admission for waiting requests (DESIGN §4 scale to zero, §5 error contract), the wait estimate, overflow."""

from __future__ import annotations

import math

import pytest

from ebbtide.core.queueing import Backlog, admit, estimate_wait_s, ewma, ready_eta_s, should_overflow


@pytest.mark.parametrize(
    ("queue", "max_queue", "ready", "slots", "service", "eta", "deadline", "accepted", "status"),
    [
        (999, 1000, 1, 4, 0.0, 0.0, math.inf, True, 200),  # one place left
        (1000, 1000, 1, 4, 0.0, 0.0, math.inf, False, 429),  # queue full → 429 + Retry-After
        (0, 10, 0, 0, 1.0, 5.0, 5.0, True, 200),  # ready exactly at the deadline: hold the request
        (0, 10, 0, 0, 1.0, 5.5, 5.0, False, 503),  # no ready replica and the cold start misses the deadline
        (3, 10, 1, 2, 2.5, 0.0, 5.0, True, 200),  # (3 + 1) × 2.5 / 2 = 5.0: just in time
        (4, 10, 1, 2, 2.5, 0.0, 5.0, False, 429),  # 6.25 s > 5 s with replicas ready → 429 (back off)
    ],
)
def test_admit(queue: int, max_queue: int, ready: int, slots: int, service: float, eta: float, deadline: float,
               accepted: bool, status: int) -> None:
    """DESIGN §5: 429 when the queue is full (+ Retry-After); 503 + Retry-After when no capacity can be ready
    within the deadline; 429 when replicas are ready but the wait misses it. Both sides of each threshold."""
    backlog = Backlog(queue, ready, slots, service, eta)
    a = admit(backlog, max_queue, deadline)
    assert (a.accepted, a.status) == (accepted, status)
    if not accepted:
        wait = backlog.wait_s()
        assert a.retry_after_s == (max(1.0, wait) if queue >= max_queue else wait)
        assert a.reason


def test_a_full_queue_sheds_a_lower_class_waiter_when_there_is_one() -> None:
    full = Backlog(10, 1, 4, 1.0)
    assert admit(full, 10, 60.0, can_shed=True).shed
    assert not admit(full, 10, 60.0, can_shed=False).accepted
    assert admit(Backlog(5, 1, 4, 0.0), 5, 60.0).retry_after_s == 1.0  # Retry-After ≥ 1 s (RFC 9110 §10.2.3)


@pytest.mark.parametrize(
    ("ahead", "slots", "service", "eta", "expected"),
    [
        (0, 4, 2.0, 0.0, 0.5),  # every slot busy: the first of 4 frees in ~service / 4
        (3, 4, 2.0, 0.0, 2.0),
        (7, 4, 2.0, 0.0, 4.0),
        (0, 0, 2.0, 5.0, 5.0),  # at zero: the cold start only
        (2, 0, 2.0, 5.0, 9.0),  # at zero with 2 ahead, served one at a time after the cold start
    ],
)
def test_estimate_wait(ahead: int, slots: int, service: float, eta: float, expected: float) -> None:
    assert estimate_wait_s(ahead, slots, service, eta) == pytest.approx(expected)


def test_overflow_only_when_the_primary_and_its_growth_both_miss_the_slo() -> None:
    slo = 3.0
    assert not should_overflow(Backlog(0, 1, 4, 1.0), free_slot=True, slo_latency_s=slo, can_grow=False)
    busy = Backlog(8, 1, 4, 1.0, ready_eta_s=30.0)  # wait (8+1)/4 = 2.25 s > budget 2 s
    assert should_overflow(busy, False, slo, can_grow=False)
    assert should_overflow(busy, False, slo, can_grow=True)  # a replica in 30 s is too late
    assert not should_overflow(Backlog(8, 1, 4, 1.0, ready_eta_s=1.0), False, slo, can_grow=True)
    assert not should_overflow(Backlog(7, 1, 4, 1.0), False, slo, can_grow=False)  # 2.0 s: within budget


def test_service_ewma_and_ready_eta() -> None:
    assert ewma(None, 4.0) == 4.0 and ewma(4.0, 14.0) == pytest.approx(5.0)
    assert ready_eta_s([], 60.0, 100.0) == 60.0
    assert ready_eta_s([80.0, 90.0], 60.0, 100.0) == 40.0  # the oldest started 20 s ago
    assert ready_eta_s([0.0], 60.0, 100.0) == 0.0  # overdue: any moment now
