"""Slots of one pool: pick a replica (core routing) and count it in-flight with no await in between; fair waiters.

When every ready replica's slots are busy, requests wait here (bounded by ``max_queue``) instead of piling onto
engines; this queue's depth is the pool's scaling signal. Waiters are served by priority class, then weighted fair
across tenants (``core.fairqueue``); a full queue sheds its newest lower-class waiter to admit a higher class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ebbtide.core.fairqueue import DEFAULT_CLASSES, FairQueue
from ebbtide.core.routing import least_outstanding
from ebbtide.core.signals import ReplicaState, ReplicaView
from ebbtide.serve.clock import Clock, WallClock

__all__ = ["ANY", "Arm", "QueueFull", "Replica", "Shed", "SlotBroker"]


class QueueFull(Exception):
    pass


class Shed(QueueFull):
    """This waiter was dropped to make room for a higher-priority request."""


@dataclass(eq=False)
class Replica:
    """The live, mutable record of one replica (the fleet owns state; the broker owns ``inflight``)."""

    replica_id: str
    pool: str
    slots: int
    state: ReplicaState = ReplicaState.REQUESTED
    base_url: str = ""
    requested_at: float = 0.0
    ready_at: float | None = None
    inflight: int = 0
    health_failures: int = 0
    variant: str = "default"
    handle: dict[str, str | int | float] = field(default_factory=dict)
    spot: bool = False
    standby: str | None = None  # a reserve member's tier (core.standby); None once it serves
    parked: str | None = None  # the tier it is parked in (state STANDBY), kept while it wakes
    woke_at: float | None = None  # when it was promoted from the reserve (its wake is timed from here)
    milestones: dict[str, float] = field(default_factory=dict)  # start-up milestones (serve/control/phases.py)

    def view(self) -> ReplicaView:
        return ReplicaView(
            self.replica_id, self.state, self.inflight, self.slots, self.requested_at, self.ready_at, self.variant,
            self.spot, self.standby,
        )


@dataclass(frozen=True, slots=True)
class Arm:
    """Which replicas may serve: only one variant (a canary's candidate) or any but one (its baseline)."""

    only: str | None = None
    avoid: str | None = None

    def admits(self, replica: Replica) -> bool:
        if self.only is not None:
            return replica.variant == self.only
        return self.avoid is None or replica.variant != self.avoid


ANY = Arm()


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[Replica]
    exclude: frozenset[str]
    arm: Arm = ANY


class SlotBroker:
    def __init__(
        self, replicas: Callable[[], list[Replica]], max_queue: int, classes: Sequence[str] = DEFAULT_CLASSES,
        clock: Clock | None = None,
    ) -> None:
        self._replicas = replicas
        self.clock: Clock = clock or WallClock()  # a waiter's deadline runs on it
        self.max_queue = max_queue
        self._queue: FairQueue[_Waiter] = FairQueue(classes)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def try_acquire(self, exclude: frozenset[str] = frozenset(), arm: Arm = ANY) -> Replica | None:
        if len(self._queue):
            return None
        return self._pick(exclude, arm)

    async def acquire(
        self,
        timeout_s: float,
        exclude: frozenset[str] = frozenset(),
        tenant: str = "",
        priority_class: str = "interactive",
        arm: Arm = ANY,
    ) -> Replica:
        replica = self.try_acquire(exclude, arm)
        if replica is not None:
            return replica
        if len(self._queue) >= self.max_queue:
            self._shed_for(priority_class)
        waiter = _Waiter(asyncio.get_running_loop().create_future(), exclude, arm)
        item = self._queue.push(waiter, tenant, priority_class)
        try:
            return await self.clock.wait_for(asyncio.shield(waiter.future), timeout_s)
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(waiter.future.result())
            elif not waiter.future.done():
                waiter.future.cancel()
            raise
        finally:
            self._queue.discard(item)

    def can_shed(self, priority_class: str) -> bool:
        """A waiter of a lower class than ``priority_class`` could make room."""
        return self._queue.shed_candidate(priority_class) is not None

    def _shed_for(self, priority_class: str) -> None:
        victim = self._queue.shed_candidate(priority_class)
        if victim is None:
            raise QueueFull(f"queue full ({self.max_queue} waiting)")
        self._queue.discard(victim)
        victim.payload.future.set_exception(Shed(f"shed for a higher-priority request ({victim.priority_class})"))

    def release(self, replica: Replica) -> None:
        replica.inflight = max(0, replica.inflight - 1)
        self.wake()

    def wake(self) -> None:
        while (head := self._queue.peek()) is not None:
            if head.payload.future.done():
                self._queue.discard(head)
                continue
            replica = self._pick(head.payload.exclude, head.payload.arm)
            if replica is None:
                if (head.payload.exclude or head.payload.arm is not ANY) and self._serve_out_of_order():
                    continue
                return
            self._queue.take(head)  # served: the class's virtual time moves on (core.fairqueue)
            head.payload.future.set_result(replica)

    def _serve_out_of_order(self) -> bool:
        """The head excludes every free replica (it is retrying): serve the first waiter that can go."""
        for item in self._queue.in_order():
            replica = self._pick(item.payload.exclude, item.payload.arm)
            if replica is not None:
                self._queue.take(item)
                item.payload.future.set_result(replica)
                return True
        return False

    def _pick(self, exclude: frozenset[str], arm: Arm = ANY) -> Replica | None:
        replicas = self._replicas()
        views = [r.view() for r in replicas if r.state is ReplicaState.READY and arm.admits(r)]
        chosen = least_outstanding(views, exclude)
        if chosen is None:
            return None
        for r in replicas:
            if r.replica_id == chosen:
                r.inflight += 1
                return r
        return None

