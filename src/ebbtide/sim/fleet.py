"""The twin's fleet: it carries out core's fleet plan on the run's event clock (the base of ``sim.pool.SimPool``).

``Start`` becomes a replica that is ready (or fails) after a modelled cold start; ``Drain`` stops routing at once
and stops the replica when idle or at its deadline; a standby replica (``Start(..., standby=tier)``) is parked
once loaded and paid at its tier's price (``replica.standby``); ``Promote`` wakes it in the tier's ``wake_s`` at
the full price again (a member still loading serves once loaded). Spot notices arrive as a Poisson process per
spot replica and are planned by ``core.fleet.preempt``. Each replica is billed by the pool's ``CostLedger``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ebbtide.config import PoolSpec
from ebbtide.core.cost import CostLedger, Price
from ebbtide.core.fleet import DEFAULT_VARIANT, Drain, FleetAction, FleetTarget, Promote, Start, plan_fleet, preempt
from ebbtide.core.signals import ReplicaState, ReplicaView
from ebbtide.sim.clock import EventClock
from ebbtide.sim.host import SharedHost
from ebbtide.sim.replica import SimReplica
from ebbtide.sim.shapes import Shape

if TYPE_CHECKING:
    from ebbtide.sim.run import Simulation

__all__ = ["SimFleet"]

READY_S, STARTING_S, DRAINING_S = ReplicaState.READY, ReplicaState.STARTING, ReplicaState.DRAINING
PARKED_S = ReplicaState.STANDBY
LOST = 502  # still running when its replica was stopped (drain timeout, spot preemption): live sees it fail


class SimFleet:
    """The fleet half of one twin pool; ``SimPool`` adds the requests, the controller and the reports."""

    run: Simulation
    spec: PoolSpec
    clock: EventClock
    rng: random.Random
    shapes: dict[str, Shape]
    host: SharedHost | None
    replicas: dict[str, SimReplica]
    views: list[ReplicaView]
    ledger: CostLedger
    prices: dict[tuple[str, bool], Price]
    spot: Any
    target: FleetTarget
    planned: tuple[int, FleetTarget] | None
    version: int
    preempt_rate_per_s: float
    actions: list[tuple[float, FleetAction]]
    capacity: int
    max_capacity: int
    next_id: int
    cold_starts: int
    cold_start_total_s: float
    startup_failures: int
    preemptions: int
    promotions: int

    push: Callable[[float, Any, Any], None]

    def _drain_queue(self, now_s: float) -> None:
        raise NotImplementedError

    def on_complete(self, now_s: float, r: SimReplica) -> None:
        raise NotImplementedError

    def _reconcile(self, now_s: float) -> None:
        if self.planned == (self.version, self.target):
            return
        self._carry_out(plan_fleet(self.views, self.target, now_s), now_s)
        self.planned = (self.version, self.target)

    def _carry_out(self, actions: list[FleetAction], now_s: float) -> None:
        for action in actions:
            self.actions.append((now_s, action))
            if isinstance(action, Start):
                self._start_replica(now_s, action)
            elif isinstance(action, Promote):
                self._promote(self.replicas[action.replica_id], now_s)
            else:
                self._drain(self.replicas[action.replica_id], action, now_s)

    def _price(self, variant: str, spot: bool) -> Price:
        key = (variant, spot)
        if key not in self.prices:
            self.prices[key] = self.spec.price(variant, spot)
        return self.prices[key]

    def _start_replica(self, now_s: float, start: Start, warm: bool = False) -> None:
        self.next_id += 1
        shape = self.shapes.get(start.variant, self.shapes[DEFAULT_VARIANT])
        r = SimReplica(f"{self.spec.name}-{self.next_id:05d}", shape.service, now_s, self.run.spread_rng,
                       start.variant, start.spot, self, start.standby)
        self.replicas[r.replica_id] = r
        self.ledger.open(r.replica_id, self._price(start.variant, start.spot), now_s)
        if start.standby is None:
            self.capacity += 1
            self.max_capacity = max(self.max_capacity, self.capacity)
        self.version += 1
        if warm and start.standby is not None:
            self._park(r, now_s)
        elif warm:
            r.set_state(READY_S, now_s)
        else:
            out = shape.cold.outcome(self.rng)
            self.clock.push(now_s + out.after_s, self.on_ready if out.ready else self.on_startup_failed, r)
        r.pos = len(self.views)
        self.views.append(r.view)
        if start.spot and self.preempt_rate_per_s > 0:
            self.clock.push(now_s + self.rng.expovariate(self.preempt_rate_per_s), self.on_preempt, r)
        if self.host is not None:
            self._host_update(now_s)

    def _park(self, r: SimReplica, now_s: float) -> None:
        """A standby replica is loaded: not routed, paid at its tier's price until promoted."""
        r.set_state(PARKED_S)
        r.ready_s = now_s if r.ready_s is None else r.ready_s
        self.ledger.reprice(r.replica_id, self.spec.price(r.variant, False, r.standby), now_s)

    def _promote(self, r: SimReplica, now_s: float) -> None:
        """Wake a reserve member: a parked one is ready after its tier's wake time, a loading one when loaded."""
        tier, r.standby = r.standby, None
        self.promotions += 1
        self.capacity += 1
        self.max_capacity = max(self.max_capacity, self.capacity)
        self.version += 1
        if r.state is PARKED_S:
            assert tier is not None
            self.ledger.reprice(r.replica_id, self._price(r.variant, r.spot), now_s)
            r.set_state(STARTING_S)
            self.clock.push(now_s + self.spec.replica.standby.tier(tier).wake_s, self.on_ready, r)
        else:
            r.set_state(r.state)  # the view drops the standby tier
        self.views[r.pos] = r.view

    def _drain(self, r: SimReplica, action: Drain, now_s: float) -> None:
        if r.state is STARTING_S or r.state is PARKED_S or r.batch == 0:
            self._stop(r, now_s)
            return
        self.capacity -= 1
        self.version += 1
        r.set_state(DRAINING_S)
        self.views[r.pos] = r.view
        deadline = action.deadline_s if action.deadline_s is not None else now_s + self.spec.replica.drain_timeout_s
        self.clock.push(deadline, self.on_drain_timeout, r)

    def _stop(self, r: SimReplica, now_s: float, state: ReplicaState = ReplicaState.STOPPED) -> None:
        if r.state in (READY_S, STARTING_S) and r.standby is None:
            self.capacity -= 1
        r.set_state(state)
        r.stopped_s = now_s
        self.ledger.close(r.replica_id, now_s)
        self.version += 1
        del self.replicas[r.replica_id]
        self.views = []
        for live in self.replicas.values():
            live.pos = len(self.views)
            self.views.append(live.view)
        if self.host is not None:
            self._host_update(now_s)

    def _host_update(self, now_s: float, about_to_serve: SimReplica | None = None) -> None:
        assert self.host is not None
        self.host.update(self.replicas.values(), now_s, self._reschedule, about_to_serve)

    def _reschedule(self, r: SimReplica) -> None:
        nf = r.next_finish_s()
        if nf < r.scheduled_s:
            r.scheduled_s = nf
            self.push(nf, self.on_complete, r)

    def on_ready(self, now_s: float, r: SimReplica) -> None:
        if r.state is not STARTING_S:
            return
        woken = r.ready_s is not None  # a promoted standby that was parked (its cold start was counted then)
        if r.standby is not None:
            self._park(r, now_s)
        else:
            r.set_state(READY_S, now_s)
        self.views[r.pos] = r.view
        self.version += 1
        if self.host is not None:  # loading is over
            self._host_update(now_s)
        if not woken:
            self.cold_starts += 1
            self.cold_start_total_s += now_s - r.requested_s
            r.ready_s = now_s
        self._reconcile(now_s)
        self._drain_queue(now_s)

    def on_startup_failed(self, now_s: float, r: SimReplica) -> None:
        if r.state is STARTING_S and r.ready_s is None:
            self.startup_failures += 1
            self._stop(r, now_s, ReplicaState.FAILED)
            self._reconcile(now_s)

    def on_preempt(self, now_s: float, r: SimReplica) -> None:
        if r.state is READY_S or r.state is STARTING_S:
            self.preemptions += 1
            r.preempted = True
            assert self.spot is not None
            self._carry_out(preempt(self.views, r.replica_id, self.spot.notice_s, self.target, now_s), now_s)

    def on_drain_timeout(self, now_s: float, r: SimReplica) -> None:
        if r.state is not DRAINING_S:
            return
        reason = "spot preemption" if r.preempted else "drain timeout"
        for item in r.abort_all():
            self.run.reject(reason, item[6], item[2], LOST)
        self.views[r.pos] = r.view
        self._stop(r, now_s)
