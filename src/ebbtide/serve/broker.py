"""Slots of one pool: pick a replica (core routing) and count it in-flight with no await in between; FIFO waiters.

When every ready replica's slots are busy, requests wait here (bounded by ``max_queue``) instead of piling onto
engines; this queue's depth is the pool's scaling signal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ebbtide.core.routing import least_outstanding
from ebbtide.core.signals import ReplicaState, ReplicaView

__all__ = ["QueueFull", "Replica", "SlotBroker"]


class QueueFull(Exception):
    pass


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

    def view(self) -> ReplicaView:
        return ReplicaView(
            self.replica_id, self.state, self.inflight, self.slots, self.requested_at, self.ready_at, self.variant
        )


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[Replica]
    exclude: frozenset[str]


class SlotBroker:
    def __init__(self, replicas: Callable[[], list[Replica]], max_queue: int) -> None:
        self._replicas = replicas
        self.max_queue = max_queue
        self._waiters: deque[_Waiter] = deque()

    @property
    def queue_depth(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    def try_acquire(self, exclude: frozenset[str] = frozenset()) -> Replica | None:
        if self._waiters:
            return None
        return self._pick(exclude)

    async def acquire(self, timeout_s: float, exclude: frozenset[str] = frozenset()) -> Replica:
        replica = self.try_acquire(exclude)
        if replica is not None:
            return replica
        if self.queue_depth >= self.max_queue:
            raise QueueFull(f"queue full ({self.max_queue} waiting)")
        waiter = _Waiter(asyncio.get_running_loop().create_future(), exclude)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout_s)
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result())
            else:
                waiter.future.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def release(self, replica: Replica) -> None:
        replica.inflight = max(0, replica.inflight - 1)
        self.wake()

    def wake(self) -> None:
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.future.done():
                self._waiters.popleft()
                continue
            replica = self._pick(waiter.exclude)
            if replica is None:
                return
            self._waiters.popleft()
            waiter.future.set_result(replica)

    def _pick(self, exclude: frozenset[str]) -> Replica | None:
        replicas = self._replicas()
        chosen = least_outstanding([r.view() for r in replicas if r.state is ReplicaState.READY], exclude)
        if chosen is None:
            return None
        for r in replicas:
            if r.replica_id == chosen:
                r.inflight += 1
                return r
        return None
