"""Routing: least outstanding requests among ready replicas with a free slot; deterministic ties by replica
id.
"""

from __future__ import annotations

import random

import pytest

from ebbtide.core.routing import least_outstanding, power_of_two, round_robin
from ebbtide.core.signals import ReplicaState, ReplicaView

R, S, D = ReplicaState.READY, ReplicaState.STARTING, ReplicaState.DRAINING


def rv(rid: str, inflight: int, state: ReplicaState = R, slots: int = 4) -> ReplicaView:
    return ReplicaView(rid, state, inflight, slots)


@pytest.mark.parametrize(
    ("replicas", "exclude", "chosen"),
    [
        ([rv("a", 2), rv("b", 1), rv("c", 3)], frozenset(), "b"),  # least outstanding
        ([rv("b", 1), rv("a", 1)], frozenset(), "a"),  # tie → smallest id, whatever the order
        ([rv("a", 1), rv("b", 1)], frozenset({"a"}), "b"),  # excluded: retry after a failure
        ([rv("a", 0, S), rv("b", 3)], frozenset(), "b"),  # starting replicas get no traffic
        ([rv("a", 0, D), rv("b", 3)], frozenset(), "b"),  # draining replicas get no traffic
        ([rv("a", 4), rv("b", 3)], frozenset(), "b"),  # a full replica (inflight == slots) is skipped
        ([rv("a", 4), rv("b", 4)], frozenset(), None),  # all full → None: wait in the queue
        ([rv("a", 0)], frozenset({"a"}), None),
        ([], frozenset(), None),
    ],
)
def test_least_outstanding(replicas: list[ReplicaView], exclude: frozenset[str], chosen: str | None) -> None:
    """Least outstanding requests (AWS ALB "least_outstanding_requests", Envoy LEAST_REQUEST; DESIGN §1
    default router) among replicas that are ready and have a free slot (issue 3: requests wait in the gateway
    queue instead of piling onto engines).
    """
    assert least_outstanding(replicas, exclude) == chosen


def test_power_of_two_is_deterministic_with_a_seeded_rng_and_respects_exclude() -> None:
    """Power of two choices (Mitzenmacher; Envoy LEAST_REQUEST with choice_count 2): randomness only from an
    injected ``random.Random(seed)`` (STYLE rule 11), so the same seed gives the same choices."""
    reps = [rv(f"r{i}", i % 3) for i in range(6)]
    first = [power_of_two(reps, random.Random(7)) for _ in range(5)]
    again = [power_of_two(reps, random.Random(7)) for _ in range(5)]
    assert first == again
    picks = {power_of_two(reps, random.Random(s), frozenset({"r0", "r3"})) for s in range(50)}
    assert picks and not picks & {"r0", "r3"}
    assert power_of_two([rv("a", 2), rv("b", 1)], random.Random(0)) == "b"  # ≤ 2 candidates: plain least


def test_round_robin_cycles_over_free_replicas_by_id() -> None:
    """Round robin baseline (DESIGN §2): order by id, ``turn`` modulo the free replicas."""
    reps = [rv("c", 0), rv("a", 0), rv("b", 4)]
    assert [round_robin(reps, k) for k in range(4)] == ["a", "c", "a", "c"]
    assert round_robin([rv("a", 4)], 0) is None
