"""A follower's view of the fleet, and what a new leader does with it.

Followers never start, stop or health-fail a replica: their ``Fleet`` holds replicas mirrored from the registry
(the leader's writes), so every gateway routes to every ready replica whoever started it, and counts its own
in-flight requests on them. A gateway that takes the lease adopts that mirror as the previous controller's
replicas: each is checked alive (and renewed), ready ones are kept and billed from now, starting ones are watched
until ready, a launch the old leader never confirmed is marked failed; then the pool plans as usual, so nothing
is started twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ebbtide.core.signals import PoolSignals, ReplicaState
from ebbtide.providers.base import Launched, Provider
from ebbtide.serve.control.fleet import Fleet
from ebbtide.serve.gateway.broker import Replica

__all__ = ["PeerTotals", "adopt_mirror", "combine", "mirror_registry"]


def mirror_registry(fleet: Fleet, rows: list[dict[str, Any]]) -> bool:
    """Make ``fleet.replicas`` what the registry says (same objects kept: their in-flight counts are ours).

    Returns whether a replica became ready here (the caller wakes the queue).
    """
    became_ready = False
    seen = set()
    for row in rows:
        if row["pool"] != fleet.pool.name:
            continue
        rid = row["replica_id"]
        seen.add(rid)
        state = ReplicaState(row["state"])
        replica = fleet.replicas.get(rid)
        if replica is None:
            if state in (ReplicaState.STOPPED, ReplicaState.FAILED):
                continue
            engine = fleet.engines.get(row["variant"], fleet.engine)
            replica = Replica(rid, row["pool"], engine.slots, state, row["base_url"], row["requested_at"],
                              row["ready_at"], variant=row["variant"], handle=dict(row["handle"]))
            fleet.replicas[rid] = replica
            became_ready |= state is ReplicaState.READY
            continue
        became_ready |= state is ReplicaState.READY and replica.state is not ReplicaState.READY
        replica.state, replica.base_url, replica.ready_at = state, row["base_url"], row["ready_at"]
        replica.handle = dict(row["handle"])
    for rid in [rid for rid, r in fleet.replicas.items() if rid not in seen and r.inflight == 0]:
        del fleet.replicas[rid]  # the registry forgot it (pruned, or a Redis that lost its data): so do we
    return became_ready


async def adopt_mirror(fleet: Fleet, provider: Provider) -> tuple[int, int]:
    """Take over the mirrored replicas as their controller: ``(adopted, marked failed)``."""
    adopted = failed = 0
    for replica in list(fleet.live_replicas()):
        launched = Launched(replica.replica_id, replica.pool, replica.base_url, replica.handle)
        if not replica.base_url:
            replica.state = ReplicaState.FAILED
            fleet.emit("failed", replica, "its launch was never confirmed by the previous leader")
            failed += 1
            continue
        if not await provider.alive(launched):
            replica.state = ReplicaState.FAILED
            fleet.emit("failed", replica, "not running when this gateway took the lease")
            failed += 1
            continue
        await provider.renew(launched)
        adopted += 1
        if replica.state is ReplicaState.DRAINING:
            replica.state = ReplicaState.READY  # the plan drains it again if it is still one too many
        if replica.state is ReplicaState.READY:
            fleet.adopt(replica)
        else:
            replica.state = ReplicaState.STARTING
            fleet.adopt(replica, launched)
        fleet.emit("adopted", replica, "by the new leader")
    return adopted, failed


@dataclass
class PeerTotals:
    """Other gateways' contribution to one pool's signals (their counters summed as increments)."""

    arrivals: int = 0
    completions: int = 0
    late: int = 0
    queue: int = 0
    inflight: dict[str, int] = field(default_factory=dict)
    last_arrival_s: float | None = None
    seen: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # gateway -> last (arrivals, completions, late)

    def update(self, peers: dict[str, dict[str, Any]]) -> None:
        """Fold in fresh peer signals; a peer's counters only add their increase (a restarted peer starts at 0)."""
        self.queue, self.inflight, last = 0, {}, None
        for gw, data in peers.items():
            arrivals, completions = int(data["arrivals"]), int(data["completions"])
            late = int(data.get("late", 0))  # a gateway of an earlier version publishes no late count
            prev = self.seen.get(gw, (arrivals, completions, late))
            self.arrivals += max(0, arrivals - prev[0])
            self.completions += max(0, completions - prev[1])
            self.late += max(0, late - prev[2])
            self.seen[gw] = (arrivals, completions, late)
            self.queue += int(data["queue"])
            for rid, n in data["inflight"].items():
                self.inflight[rid] = self.inflight.get(rid, 0) + int(n)
            if data["last_arrival"] is not None:
                last = max(last or data["last_arrival"], data["last_arrival"])
        self.last_arrival_s = last


def combine(own: PoolSignals, peers: PeerTotals | None) -> PoolSignals:
    """This gateway's signals plus every other gateway's: what the leader decides on (DESIGN's one fleet)."""
    if peers is None:
        return own
    from dataclasses import replace

    replicas = tuple(replace(v, inflight=v.inflight + peers.inflight.get(v.replica_id, 0)) for v in own.replicas)
    lasts = [t for t in (own.last_arrival_s, peers.last_arrival_s) if t is not None]
    return replace(own, replicas=replicas, queue_depth=own.queue_depth + peers.queue,
                   arrivals_total=own.arrivals_total + peers.arrivals,
                   completions_total=own.completions_total + peers.completions,
                   late_total=own.late_total + peers.late,
                   last_arrival_s=max(lasts) if lasts else None)
