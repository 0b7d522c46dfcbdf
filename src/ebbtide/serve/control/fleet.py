"""Replica lifecycle for one pool over any provider: carry out core's fleet plan, wait ready, health-check, drain.

``requested → starting → ready → draining → stopped``, plus ``failed`` and the reserve's ``standby``. What to
start, promote and drain is decided once, in ``core.fleet.plan_fleet`` (removal order, variant switch,
candidates, the spot on-demand floor, the standby reserve) and ``core.fleet.preempt`` (spot notices) — the twin
carries out the same plan. This module only turns its actions into provider calls: ``Start`` launches a replica
(``serve/control/startup.py`` watches it to ready, warms it up, times its phases, and parks a standby one),
``Promote`` wakes a reserve member, ``Drain`` stops routing to one at once and stops it when ``drain_finished``
(nothing in flight, or its deadline). Every carried-out action is kept in ``actions`` (ordered, bounded) so a
test can compare the live fleet with the twin's. Every transition is an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

from ebbtide.config import PoolSpec
from ebbtide.core.cost import CostLedger
from ebbtide.core.fairqueue import DEFAULT_CLASSES
from ebbtide.core.fleet import (
    DEFAULT_VARIANT,
    FleetAction,
    FleetTarget,
    Promote,
    Start,
    drain_finished,
    plan_fleet,
    preempt,
)
from ebbtide.core.signals import CAPACITY_STATES, ReplicaState
from ebbtide.core.standby import StandbyWish
from ebbtide.engines.base import Engine, Health
from ebbtide.providers.base import Launched, Provider
from ebbtide.serve.clock import Clock, WallClock
from ebbtide.serve.control.startup import PhaseSink, Startup
from ebbtide.serve.gateway.broker import Replica, SlotBroker

__all__ = ["EventSink", "Fleet"]

EventSink = Callable[[str, Replica | None, str], None]
DRAIN_POLL_S = 0.05
ACTIONS_KEPT = 10_000
_LIVE_STATES = CAPACITY_STATES | {ReplicaState.STANDBY}


class Fleet:
    def __init__(
        self,
        pool: PoolSpec,
        provider: Provider,
        engine: Engine,
        session: aiohttp.ClientSession,
        emit: EventSink,
        next_id: Callable[[], str],
        max_queue: int,
        clock: Clock | None = None,
        variants: dict[str, Engine] | None = None,
        priority_classes: Sequence[str] = DEFAULT_CLASSES,
        record_phases: PhaseSink | None = None,
    ) -> None:
        self.pool = pool
        self.provider = provider
        self.engine = engine
        self.engines = {DEFAULT_VARIANT: engine, **(variants or {})}
        self.variant = DEFAULT_VARIANT
        self.previous_variant = DEFAULT_VARIANT
        self.spot_available = True
        self.candidate_count = 0
        self.hold_old = False
        self.standby = pool.scaling.standby.wish()  # the configured reserve; a policy's wish replaces it
        self.session = session
        self.emit = emit
        self.next_id = next_id
        self.clock = clock or WallClock()
        self.replicas: dict[str, Replica] = {}
        self.desired = 0
        self.actions: deque[tuple[float, FleetAction]] = deque(maxlen=ACTIONS_KEPT)
        self.ledger = CostLedger()  # each replica billed at its own price from request to stop
        self.broker = SlotBroker(self.live_replicas, max_queue, priority_classes, self.clock)
        self.startup = Startup(self, record_phases or (lambda replica, kind, phases: None))
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.acting = True  # False on a follower gateway (state: redis): it routes to the leader's replicas

    def live_replicas(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.state not in (ReplicaState.STOPPED, ReplicaState.FAILED)]

    def has_ready(self) -> bool:
        return any(r.state is ReplicaState.READY for r in self.replicas.values())

    def capacity(self) -> list[Replica]:
        """Serving replicas, ready or on their way (the reserve is not capacity)."""
        return [r for r in self.replicas.values() if r.state in CAPACITY_STATES and r.standby is None]

    def engine_of(self, replica: Replica) -> Engine:
        return self.engines.get(replica.variant, self.engine)

    def set_desired(self, desired: int, variant: str | None = None, standby: StandbyWish | None = None) -> None:
        self.desired = max(0, desired)
        self.standby = standby if standby is not None else self.pool.scaling.standby.wish()
        if variant is not None and variant != self.variant and variant in self.engines:
            self.switch_variant(variant, f"start {variant}, then drain {self.variant}")
            return
        self._reconcile()

    def adopt(self, replica: Replica, launched: Launched | None = None) -> None:
        """A replica a previous controller left running: billed from now; watched until ready unless it is."""
        self.replicas[replica.replica_id] = replica
        self._bill(replica)
        if launched is not None:
            self._spawn(self.startup.watch_ready(replica, launched, adopted=True))

    def target(self) -> FleetTarget:
        spot = self.pool.replica.spot
        return FleetTarget(
            self.desired, self.variant, self.candidate_count, self.hold_old,
            spot=spot is not None and self.spot_available, min_on_demand=spot.min_on_demand if spot else 0,
            standby=self.standby,
        )

    def reconcile(self) -> None:
        self._reconcile()

    def _reconcile(self) -> None:
        if self._closing or not self.acting:
            return
        now = self.clock.now()
        self._carry_out(plan_fleet([r.view() for r in self.live_replicas()], self.target(), now), now)

    def _carry_out(self, actions: list[FleetAction], now: float) -> None:
        for action in actions:
            self.actions.append((now, action))
            if isinstance(action, Start):
                self._start_one(action)
            elif isinstance(action, Promote):
                self.startup.promote(self.replicas[action.replica_id], action.reason)
            else:
                within = None if action.deadline_s is None else max(0.0, action.deadline_s - now)
                self._start_drain(self.replicas[action.replica_id], action.reason, within_s=within)

    def set_candidates(self, count: int) -> None:
        self.candidate_count = count
        self._reconcile()

    def switch_variant(self, variant: str, reason: str, hold_old: bool = False) -> None:
        """Move the pool to ``variant``: start it, then drain the others once it is ready (unless ``hold_old``)."""
        if variant != self.variant:
            self.emit("variant", None, f"switch {self.variant} → {variant}: {reason}")
            self.previous_variant, self.variant = self.variant, variant
        self.hold_old = hold_old
        self._reconcile()

    def _start_one(self, start: Start) -> None:
        engine = self.engines[start.variant]
        replica = Replica(self.next_id(), self.pool.name, engine.slots, requested_at=self.clock.now(),
                          variant=start.variant, spot=start.spot, standby=start.standby)
        self.replicas[replica.replica_id] = replica
        self._bill(replica)
        self.emit("requested", replica, start.reason)
        self._spawn(self.startup.launch(replica))

    def _bill(self, replica: Replica) -> None:
        if not self.ledger.is_open(replica.replica_id):
            self.ledger.open(replica.replica_id, self.price_of(replica), self.clock.now())

    def price_of(self, replica: Replica) -> Any:
        """Its variant's price, spot or on-demand; a parked standby pays its tier's price."""
        return self.pool.price(replica.variant, replica.spot, replica.parked if replica.state is
                               ReplicaState.STANDBY else None)

    def reprice(self, replica: Replica) -> None:
        self.ledger.reprice(replica.replica_id, self.price_of(replica), self.clock.now())

    async def check_health(self) -> None:
        """One health pass over ready replicas (a parked one: only that its process exists); renews every lease."""
        for replica in list(self.live_replicas()):
            launched = self.launched(replica)
            await self.provider.renew(launched)
            if replica.state not in (ReplicaState.READY, ReplicaState.STANDBY):
                continue
            if replica.base_url and not await self.provider.alive(launched):
                self.fail(replica, "process exited")
                continue
            if replica.state is ReplicaState.STANDBY:
                continue  # paused: it cannot answer, and need not until it is promoted
            if await self.engine_of(replica).health(self.session, replica.base_url) is Health.READY:
                replica.health_failures = 0
                continue
            replica.health_failures += 1
            if replica.health_failures >= self.pool.replica.health_failures:
                self.fail(replica, f"{replica.health_failures} consecutive failed health checks")

    async def suspect(self, replica: Replica) -> None:
        """A proxied request saw a connection failure: check now instead of at the next interval."""
        if not self.acting:  # a follower leaves health to the leader (the request is retried elsewhere)
            return
        if replica.state is ReplicaState.READY and not await self.provider.alive(self.launched(replica)):
            self.fail(replica, "process exited (seen by a request)")

    def fail(self, replica: Replica, reason: str) -> None:
        if replica.state in (ReplicaState.FAILED, ReplicaState.STOPPED):
            return
        replica.state = ReplicaState.FAILED
        self.ledger.close(replica.replica_id, self.clock.now())
        self.emit("failed", replica, reason)
        if replica.base_url:
            self._spawn(self.provider.terminate(self.launched(replica), self.pool.replica.stop_grace_s))
        self._reconcile()

    def _start_drain(
        self, replica: Replica, reason: str, spawn: bool = True, within_s: float | None = None
    ) -> None:
        """Stop routing to the replica now (synchronously, so no second caller picks it), then drain and stop."""
        if replica.state not in _LIVE_STATES:
            return
        replica.state = ReplicaState.DRAINING
        self.emit("draining", replica, f"{reason}; {replica.inflight} in flight")
        if spawn:
            self._spawn(self._finish_drain(replica, within_s))

    def preempt(self, replica_id: str, notice_s: float | None = None) -> bool:
        """Spot termination notice: no new requests, a replacement starts at once, the replica is gone after the
        notice. Requests still running then fail over (retried elsewhere if nothing was streamed yet)."""
        replica = self.replicas.get(replica_id)
        if replica is None or replica.state not in CAPACITY_STATES:
            return False
        spot = self.pool.replica.spot
        notice = notice_s if notice_s is not None else (spot.notice_s if spot else self.pool.replica.drain_timeout_s)
        self.emit("preempted", replica, f"termination notice: gone in {notice:g}s")
        now = self.clock.now()
        views = [r.view() for r in self.live_replicas()]
        self._carry_out(preempt(views, replica_id, notice, self.target(), now), now)
        return True

    def set_spot_available(self, available: bool) -> None:
        if available != self.spot_available:
            self.spot_available = available
            self.emit("spot", None, "spot capacity available" if available else "spot unavailable: on-demand")

    async def _finish_drain(self, replica: Replica, within_s: float | None = None) -> None:
        limit = self.pool.replica.drain_timeout_s if within_s is None else within_s
        deadline = self.clock.monotonic() + limit  # monotonic: a wall-clock step must not end a drain early
        while not drain_finished(replica.inflight, deadline, self.clock.monotonic()):
            await asyncio.sleep(DRAIN_POLL_S)
        left = replica.inflight
        if replica.base_url:
            await self.provider.terminate(self.launched(replica), self.pool.replica.stop_grace_s)
        replica.state = ReplicaState.STOPPED
        self.ledger.close(replica.replica_id, self.clock.now())
        self.emit("stopped", replica, f"drained ({left} still in flight at stop)" if left else "drained")

    def launched(self, replica: Replica) -> Launched:
        return Launched(replica.replica_id, replica.pool, replica.base_url, replica.handle)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._spawn(coro)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget_stopped(self, keep: int = 20) -> None:
        gone = [r for r in self.replicas.values() if r.state in (ReplicaState.STOPPED, ReplicaState.FAILED)]
        for r in gone[: max(0, len(gone) - keep)]:
            del self.replicas[r.replica_id]

    async def close(self, keep_replicas: bool = False) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if keep_replicas:
            return
        for replica in self.live_replicas():
            self._start_drain(replica, "shutdown", spawn=False)
        draining = [r for r in self.replicas.values() if r.state is ReplicaState.DRAINING]
        await asyncio.gather(*(self._finish_drain(r) for r in draining), return_exceptions=True)
