"""Choose a replica for a request. Default: least outstanding requests among ready replicas with a free slot.

Ties break on the replica id so two drivers given the same snapshot make the same choice.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ebbtide.core.signals import ReplicaState, ReplicaView

__all__ = ["least_outstanding", "power_of_two", "round_robin"]


def least_outstanding(replicas: Sequence[ReplicaView], exclude: frozenset[str] = frozenset()) -> str | None:
    best: ReplicaView | None = None
    ready = ReplicaState.READY
    for r in replicas:  # ``has_free_slot`` spelt out: this runs once per request in the twin
        if r.state is not ready or r.inflight >= r.slots or (exclude and r.replica_id in exclude):
            continue
        if best is None or r.inflight < best.inflight or (
            r.inflight == best.inflight and r.replica_id < best.replica_id
        ):
            best = r
    return None if best is None else best.replica_id


def power_of_two(
    replicas: Sequence[ReplicaView], rng: random.Random, exclude: frozenset[str] = frozenset()
) -> str | None:
    free = [r for r in replicas if r.has_free_slot and r.replica_id not in exclude]
    if len(free) <= 2:
        return least_outstanding(free)
    return least_outstanding(rng.sample(free, 2))


def round_robin(replicas: Sequence[ReplicaView], turn: int, exclude: frozenset[str] = frozenset()) -> str | None:
    free = sorted((r for r in replicas if r.has_free_slot and r.replica_id not in exclude), key=lambda r: r.replica_id)
    return free[turn % len(free)].replica_id if free else None
