"""Which replicas to start and which to drain, as data: the one fleet plan that ``serve`` and ``sim`` carry out.

Given the pool's replicas (``ReplicaView``: state, variant, in-flight, spot, age) and a ``FleetTarget`` (the
controller's desired count, the serving variant, rollout candidates, spot wishes), ``plan_fleet`` returns the
actions that move the fleet toward the target: ``Start(variant, spot)`` and ``Drain(replica_id)``. The drivers
only carry them out (a process on a provider, or an event on the twin's heap); a drain ends when the replica has
nothing in flight or its deadline passes (``drain_finished``), and failed replicas are simply no longer capacity,
so the next plan replaces them.

Rules, once:
- **removal order**: not-ready replicas first, then the fewest in flight, then the newest, then the id; an
  on-demand replica that holds the ``min_on_demand`` floor goes last.
- **variant switch**: the new variant starts at once; the old one drains only as new replicas become ready (or
  only when told, ``hold_old``, for blue-green), so there is never a capacity gap.
- **candidates** (rollouts) are counted apart from the serving variant.
- **spot**: new replicas are spot when allowed, except while the serving variant has fewer than ``min_on_demand``
  on-demand replicas; a spot notice (``preempt``) drains the replica within the notice and plans its replacement.

Usage::

    actions = plan_fleet(views, FleetTarget(desired=3, variant="default"), now_s)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ebbtide.core.signals import CAPACITY_STATES, ReplicaState, ReplicaView

__all__ = [
    "CANDIDATE",
    "DEFAULT_VARIANT",
    "Drain",
    "FleetAction",
    "FleetTarget",
    "Start",
    "drain_finished",
    "plan_fleet",
    "preempt",
    "removal_order",
]

DEFAULT_VARIANT = "default"
CANDIDATE = "candidate"


@dataclass(frozen=True, slots=True)
class FleetTarget:
    """What the pool should look like: ``desired`` serving replicas of ``variant`` plus ``candidates``."""

    desired: int
    variant: str = DEFAULT_VARIANT
    candidates: int = 0
    hold_old: bool = False  # blue-green: keep the old variant until told otherwise
    spot: bool = False  # new replicas may be spot (configured and currently available)
    min_on_demand: int = 0  # ...but the serving variant keeps at least this many on-demand replicas


@dataclass(frozen=True, slots=True)
class Start:
    variant: str
    spot: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop routing to the replica now; stop it when nothing is in flight or at ``deadline_s`` (``None``: the
    pool's drain timeout from now)."""

    replica_id: str
    reason: str
    deadline_s: float | None = None


FleetAction = Start | Drain


def removal_order(r: ReplicaView) -> tuple[int, int, float, str]:
    return (0 if r.state is not ReplicaState.READY else 1, r.inflight, -r.started_at_s, r.replica_id)


def drain_finished(inflight: int, deadline_s: float, now_s: float) -> bool:
    return inflight == 0 or now_s >= deadline_s


def plan_fleet(replicas: Sequence[ReplicaView], target: FleetTarget, now_s: float) -> list[FleetAction]:
    capacity = [r for r in replicas if r.state in CAPACITY_STATES]
    actions: list[FleetAction] = []
    if target.variant != CANDIDATE:
        actions += _candidate_actions([r for r in capacity if r.variant == CANDIDATE], target.candidates)
    have = [r for r in capacity if r.variant == target.variant]
    old = [r for r in capacity if r.variant not in (target.variant, CANDIDATE)]
    actions += _starts(have, target)
    actions += [Drain(r.replica_id, f"scale-in to {target.desired}") for r in _victims(have, target)]
    ready_new = sum(1 for r in have if r.state is ReplicaState.READY)
    keep_old = len(old) if target.hold_old else max(0, target.desired - ready_new)
    for r in sorted(old, key=removal_order)[: max(0, len(old) - keep_old)]:
        actions.append(Drain(r.replica_id, f"replaced by variant {target.variant}"))
    return actions


def preempt(
    replicas: Sequence[ReplicaView], replica_id: str, notice_s: float, target: FleetTarget, now_s: float
) -> list[FleetAction]:
    """A spot termination notice: drain within the notice, and plan the replacement at once."""
    hit = next((r for r in replicas if r.replica_id == replica_id and r.state in CAPACITY_STATES), None)
    if hit is None:
        return []
    after = [replace(r, state=ReplicaState.DRAINING) if r is hit else r for r in replicas]
    drain = Drain(replica_id, "spot termination notice", now_s + notice_s)
    return [drain, *plan_fleet(after, target, now_s)]


def _candidate_actions(have: list[ReplicaView], wanted: int) -> list[FleetAction]:
    actions: list[FleetAction] = [Start(CANDIDATE, False, "rollout candidate") for _ in range(wanted - len(have))]
    for r in sorted(have, key=removal_order)[: max(0, len(have) - wanted)]:
        actions.append(Drain(r.replica_id, "candidate no longer wanted"))
    return actions


def _starts(have: list[ReplicaView], target: FleetTarget) -> list[FleetAction]:
    on_demand = sum(1 for r in have if not r.spot)
    starts: list[FleetAction] = []
    for _ in range(target.desired - len(have)):
        spot = target.spot and on_demand >= target.min_on_demand
        on_demand += 0 if spot else 1
        starts.append(Start(target.variant, spot, f"desired {target.desired}"))
    return starts


def _victims(have: list[ReplicaView], target: FleetTarget) -> list[ReplicaView]:
    excess = len(have) - target.desired
    if excess <= 0:
        return []
    on_demand = sum(1 for r in have if not r.spot)
    chosen: list[ReplicaView] = []
    pool = sorted(have, key=removal_order)
    while len(chosen) < excess:
        floor_holds = [r for r in pool if not r.spot and on_demand <= target.min_on_demand]
        victim = next((r for r in pool if r not in floor_holds), pool[0])
        pool.remove(victim)
        chosen.append(victim)
        on_demand -= 0 if victim.spot else 1
    return chosen
