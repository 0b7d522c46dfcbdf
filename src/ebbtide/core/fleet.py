"""Which replicas to start and which to drain, as data: the one fleet plan that ``serve`` and ``sim`` carry out.

Given the pool's replicas (``ReplicaView``: state, variant, in-flight, spot, age, standby tier) and a
``FleetTarget`` (the controller's desired count, the serving variant, rollout candidates, spot and standby
wishes), ``plan_fleet`` returns the actions that move the fleet toward the target: ``Start(variant, spot)``,
``Promote(replica_id)`` and ``Drain(replica_id)``. The drivers
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
- **standby** (``core.standby``): the reserve is replicas with a ``standby`` tier, apart from those that serve. A
  scale-out promotes reserve members of the serving variant before it starts any replica cold (parked ones
  first, hot before warm, then the oldest); the reserve is then refilled in the background
  (``Start(..., standby=tier)``: the driver parks that replica once it is loaded instead of routing to it);
  members of another tier or variant, and any beyond ``standby.count``, are drained. Reserve members are
  on-demand, and are not counted against the serving replicas' bounds.

Usage::

    actions = plan_fleet(views, FleetTarget(desired=3, variant="default"), now_s)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ebbtide.core.signals import CAPACITY_STATES, ReplicaState, ReplicaView
from ebbtide.core.standby import StandbyWish, tier_rank

__all__ = [
    "CANDIDATE",
    "DEFAULT_VARIANT",
    "RESERVE_STATES",
    "Drain",
    "FleetAction",
    "FleetTarget",
    "Promote",
    "Start",
    "drain_finished",
    "plan_fleet",
    "preempt",
    "removal_order",
    "wake_order",
]

DEFAULT_VARIANT = "default"
CANDIDATE = "candidate"
# A reserve member is loading toward standby (requested/starting) or parked there (standby).
NO_STANDBY = StandbyWish()
RESERVE_STATES = frozenset({ReplicaState.REQUESTED, ReplicaState.STARTING, ReplicaState.STANDBY})


@dataclass(frozen=True, slots=True)
class FleetTarget:
    """What the pool should look like: ``desired`` serving replicas of ``variant`` plus ``candidates``."""

    desired: int
    variant: str = DEFAULT_VARIANT
    candidates: int = 0
    hold_old: bool = False  # blue-green: keep the old variant until told otherwise
    spot: bool = False  # new replicas may be spot (configured and currently available)
    min_on_demand: int = 0  # ...but the serving variant keeps at least this many on-demand replicas
    standby: StandbyWish = NO_STANDBY  # the reserve kept beside the serving replicas


@dataclass(frozen=True, slots=True)
class Start:
    """Start a replica; with ``standby`` (a tier), park it in the reserve once loaded instead of routing to it."""

    variant: str
    spot: bool
    reason: str
    standby: str | None = None


@dataclass(frozen=True, slots=True)
class Promote:
    """Wake a reserve member and route to it once ready (a hot one resumes; a warm one starts from local disk)."""

    replica_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Stop routing to the replica now; stop it when nothing is in flight or at ``deadline_s`` (``None``: the
    pool's drain timeout from now)."""

    replica_id: str
    reason: str
    deadline_s: float | None = None


FleetAction = Start | Promote | Drain


def removal_order(r: ReplicaView) -> tuple[int, int, float, str]:
    loaded = r.state is ReplicaState.READY or r.state is ReplicaState.STANDBY
    return (0 if not loaded else 1, r.inflight, -r.started_at_s, r.replica_id)


def drain_finished(inflight: int, deadline_s: float, now_s: float) -> bool:
    return inflight == 0 or now_s >= deadline_s


def plan_fleet(replicas: Sequence[ReplicaView], target: FleetTarget, now_s: float) -> list[FleetAction]:
    capacity = [r for r in replicas if r.state in CAPACITY_STATES and r.standby is None]
    reserve = sorted((r for r in replicas if r.state in RESERVE_STATES and r.standby is not None), key=wake_order)
    actions: list[FleetAction] = []
    if target.variant != CANDIDATE:
        actions += _candidate_actions([r for r in capacity if r.variant == CANDIDATE], target.candidates)
    have = [r for r in capacity if r.variant == target.variant]
    old = [r for r in capacity if r.variant not in (target.variant, CANDIDATE)]
    promoted = _promotions(have, reserve, target)
    actions += promoted
    woken = {p.replica_id for p in promoted}
    reserve = [r for r in reserve if r.replica_id not in woken]
    have = have + [replace(r, standby=None) for r in replicas if r.replica_id in woken]
    actions += _starts(have, target)
    actions += [Drain(r.replica_id, f"scale-in to {target.desired}") for r in _victims(have, target)]
    ready_new = sum(1 for r in have if r.state is ReplicaState.READY)
    keep_old = len(old) if target.hold_old else max(0, target.desired - ready_new)
    for r in sorted(old, key=removal_order)[: max(0, len(old) - keep_old)]:
        actions.append(Drain(r.replica_id, f"replaced by variant {target.variant}"))
    return actions + _reserve_actions(reserve, target)


def wake_order(r: ReplicaView) -> tuple[int, int, float, str]:
    """Parked members first (they wake fastest), hot before warm, then the oldest (furthest into its start)."""
    return (0 if r.state is ReplicaState.STANDBY else 1, tier_rank(r.standby), r.started_at_s, r.replica_id)


def _promotions(have: list[ReplicaView], reserve: list[ReplicaView], target: FleetTarget) -> list[Promote]:
    short = max(0, target.desired - len(have))
    fits = [r for r in reserve if r.variant == target.variant]
    return [Promote(r.replica_id, f"desired {target.desired}: wake {r.standby} standby") for r in fits[:short]]


def _reserve_actions(reserve: list[ReplicaView], target: FleetTarget) -> list[FleetAction]:
    """Refill or trim the reserve: drain members of another tier or variant and any beyond the count."""
    wish = target.standby
    keep = [r for r in reserve if r.standby == wish.tier and r.variant == target.variant]
    actions: list[FleetAction] = [
        Drain(r.replica_id, f"standby is now {wish}") for r in reserve if r not in keep
    ]
    excess = sorted(keep, key=removal_order)[: max(0, len(keep) - wish.wanted)]
    actions += [Drain(r.replica_id, f"standby is now {wish}") for r in excess]
    actions += [
        Start(target.variant, False, f"standby {wish}", standby=wish.tier)
        for _ in range(wish.wanted - len(keep))
    ]
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
