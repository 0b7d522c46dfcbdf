"""Snapshots the drivers hand to policies: replicas by state and the pool's load counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CAPACITY_STATES", "PoolSignals", "ReplicaState", "ReplicaView"]


class ReplicaState(StrEnum):
    REQUESTED = "requested"
    STARTING = "starting"
    READY = "ready"
    STANDBY = "standby"  # loaded (or staged) and parked: not routed, not capacity, woken by a Promote
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


CAPACITY_STATES = frozenset({ReplicaState.REQUESTED, ReplicaState.STARTING, ReplicaState.READY})


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What routing and policies may know about one replica."""

    replica_id: str
    state: ReplicaState
    inflight: int
    slots: int
    started_at_s: float = 0.0
    ready_at_s: float | None = None
    variant: str = "default"
    spot: bool = False
    standby: str | None = None  # the tier of a reserve member (starting toward it, or parked); None: serving

    @property
    def has_free_slot(self) -> bool:
        return self.state is ReplicaState.READY and self.inflight < self.slots


@dataclass(frozen=True, slots=True)
class PoolSignals:
    """One observation of a pool, taken by a driver at ``now_s``.

    Counters (``arrivals_total``, ``completions_total``, ``late_total``) are cumulative and monotonic so that
    policies can build their own per-minute or windowed datapoints without the driver knowing their windows.
    ``late_total`` counts the completions whose end-to-end latency exceeded ``slo.latency_p95_s``: more than 5 %
    of a window's completions late is a window whose P95 misses the SLO.
    """

    pool: str
    now_s: float
    capacity: int
    replicas: tuple[ReplicaView, ...]
    queue_depth: int
    arrivals_total: int
    completions_total: int = 0
    last_arrival_s: float | None = None
    cold_start_p90_s: float | None = None  # measured by the driver (store / cold-start model), if known
    late_total: int = 0

    def count(self, state: ReplicaState) -> int:
        return sum(1 for r in self.replicas if r.state is state)

    @property
    def ready(self) -> int:
        return self.count(ReplicaState.READY)

    @property
    def inflight(self) -> int:
        return sum(r.inflight for r in self.replicas)

    @property
    def outstanding(self) -> int:
        """Requests in the system: running on replicas plus waiting in the gateway queue."""
        return self.inflight + self.queue_depth
