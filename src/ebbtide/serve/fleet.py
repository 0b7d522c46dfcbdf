"""Replica lifecycle for one pool over any provider: start, wait ready (startup timeout), health-check, drain, replace.

``requested → starting → ready → draining → stopped``, plus ``failed``. The fleet keeps ``desired`` replicas with
capacity (requested/starting/ready) and replaces failed ones; every transition is an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiohttp

from ebbtide.config import PoolSpec
from ebbtide.core.fairqueue import DEFAULT_CLASSES
from ebbtide.core.signals import CAPACITY_STATES, ReplicaState
from ebbtide.engines.base import Engine, Health
from ebbtide.providers.base import Launched, Provider
from ebbtide.serve.broker import Replica, SlotBroker
from ebbtide.serve.clock import WallClock

__all__ = ["EventSink", "Fleet"]

EventSink = Callable[[str, Replica | None, str], None]
STARTUP_POLL_S = 0.05
CANDIDATE = "candidate"


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
        clock: WallClock | None = None,
        variants: dict[str, Engine] | None = None,
        priority_classes: Sequence[str] = DEFAULT_CLASSES,
    ) -> None:
        self.pool = pool
        self.provider = provider
        self.engine = engine
        self.engines = {"default": engine, **(variants or {})}
        self.variant = "default"
        self.previous_variant = "default"
        self.spot_available = True
        self.candidate_count = 0
        self.hold_old = False
        self.session = session
        self.emit = emit
        self.next_id = next_id
        self.clock = clock or WallClock()
        self.replicas: dict[str, Replica] = {}
        self.desired = 0
        self.broker = SlotBroker(self.live_replicas, max_queue, priority_classes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def live_replicas(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.state not in (ReplicaState.STOPPED, ReplicaState.FAILED)]

    def has_ready(self) -> bool:
        return any(r.state is ReplicaState.READY for r in self.replicas.values())

    def capacity(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.state in CAPACITY_STATES]

    def engine_of(self, replica: Replica) -> Engine:
        return self.engines.get(replica.variant, self.engine)

    def set_desired(self, desired: int, variant: str | None = None) -> None:
        self.desired = max(0, desired)
        if variant is not None and variant != self.variant and variant in self.engines:
            self.switch_variant(variant, f"start {variant}, then drain {self.variant}")
            return
        self._reconcile()

    def adopt(self, replica: Replica, launched: Launched) -> None:
        self.replicas[replica.replica_id] = replica
        self._spawn(self._watch_ready(replica, launched, adopted=True))

    def _reconcile(self) -> None:
        if self._closing:
            return
        have = [r for r in self.capacity() if r.variant == self.variant]
        old = [r for r in self.capacity() if r.variant not in (self.variant, CANDIDATE)]
        self._reconcile_candidates()
        for _ in range(self.desired - len(have)):
            self._start_one()
        excess = len(have) - self.desired
        if excess > 0:
            for victim in sorted(have, key=_victim_order)[:excess]:
                self._start_drain(victim, f"scale-in to {self.desired}")
        ready_new = sum(1 for r in have if r.state is ReplicaState.READY)
        keep_old = len(old) if self.hold_old else max(0, self.desired - ready_new)
        for victim in sorted(old, key=_victim_order)[: max(0, len(old) - keep_old)]:
            self._start_drain(victim, f"replaced by variant {self.variant}")

    def _reconcile_candidates(self) -> None:
        if self.variant == CANDIDATE:
            return
        have = [r for r in self.capacity() if r.variant == CANDIDATE]
        for _ in range(self.candidate_count - len(have)):
            self._start_one(CANDIDATE)
        for victim in sorted(have, key=_victim_order)[: max(0, len(have) - self.candidate_count)]:
            self._start_drain(victim, "candidate no longer wanted")

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

    def _start_one(self, variant: str | None = None) -> None:
        variant = variant or self.variant
        engine = self.engines[variant]
        replica = Replica(self.next_id(), self.pool.name, engine.slots, requested_at=self.clock.now(),
                          variant=variant, spot=self.pool.replica.spot is not None and self.spot_available)
        self.replicas[replica.replica_id] = replica
        self.emit("requested", replica, f"desired {self.desired}")
        self._spawn(self._launch(replica))

    async def _launch(self, replica: Replica) -> None:
        try:
            launched = await self.provider.launch(self.pool, self.engine_of(replica), replica.replica_id)
        except Exception as exc:
            self._fail(replica, f"launch failed: {exc}")
            return
        replica.base_url, replica.handle = launched.base_url, dict(launched.handle)
        if replica.state is not ReplicaState.REQUESTED:
            await self.provider.terminate(launched, self.pool.replica.stop_grace_s)
            return
        replica.state = ReplicaState.STARTING
        self.emit("starting", replica, f"{launched.base_url} {launched.handle}")
        await self._watch_ready(replica, launched, adopted=False)

    async def _watch_ready(self, replica: Replica, launched: Launched, adopted: bool) -> None:
        deadline = replica.requested_at + self.pool.replica.startup_timeout_s
        while replica.state is ReplicaState.STARTING:
            if not await self.provider.alive(launched):
                self._fail(replica, "process exited during startup")
                return
            if await self.engine_of(replica).health(self.session, replica.base_url) is Health.READY:
                replica.state, replica.ready_at = ReplicaState.READY, self.clock.now()
                took = replica.ready_at - replica.requested_at
                self.emit("adopted" if adopted else "ready", replica, f"ready after {took:.2f}s")
                self.broker.wake()
                self._reconcile()
                return
            if self.clock.now() > deadline:
                self._fail(replica, f"not ready within startup_timeout_s {self.pool.replica.startup_timeout_s:g}")
                return
            await asyncio.sleep(STARTUP_POLL_S)

    async def check_health(self) -> None:
        """One health pass over ready/draining replicas; also renews every live replica's lease."""
        for replica in list(self.live_replicas()):
            launched = self._launched(replica)
            await self.provider.renew(launched)
            if replica.state is not ReplicaState.READY:
                continue
            if not await self.provider.alive(launched):
                self._fail(replica, "process exited")
                continue
            if await self.engine_of(replica).health(self.session, replica.base_url) is Health.READY:
                replica.health_failures = 0
                continue
            replica.health_failures += 1
            if replica.health_failures >= self.pool.replica.health_failures:
                self._fail(replica, f"{replica.health_failures} consecutive failed health checks")

    async def suspect(self, replica: Replica) -> None:
        """A proxied request saw a connection failure: check now instead of at the next interval."""
        if replica.state is ReplicaState.READY and not await self.provider.alive(self._launched(replica)):
            self._fail(replica, "process exited (seen by a request)")

    def _fail(self, replica: Replica, reason: str) -> None:
        if replica.state in (ReplicaState.FAILED, ReplicaState.STOPPED):
            return
        replica.state = ReplicaState.FAILED
        self.emit("failed", replica, reason)
        if replica.base_url:
            self._spawn(self.provider.terminate(self._launched(replica), self.pool.replica.stop_grace_s))
        self._reconcile()

    def _start_drain(
        self, replica: Replica, reason: str, spawn: bool = True, within_s: float | None = None
    ) -> None:
        """Stop routing to the replica now (synchronously, so no second caller picks it), then drain and stop."""
        if replica.state not in CAPACITY_STATES:
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
        self._start_drain(replica, "spot termination notice", within_s=notice)
        self._reconcile()
        return True

    def set_spot_available(self, available: bool) -> None:
        if available != self.spot_available:
            self.spot_available = available
            self.emit("spot", None, "spot capacity available" if available else "spot unavailable: on-demand")

    async def _finish_drain(self, replica: Replica, within_s: float | None = None) -> None:
        limit = self.pool.replica.drain_timeout_s if within_s is None else within_s
        deadline = self.clock.monotonic() + limit
        while replica.inflight > 0 and self.clock.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = replica.inflight
        if replica.base_url:
            await self.provider.terminate(self._launched(replica), self.pool.replica.stop_grace_s)
        replica.state = ReplicaState.STOPPED
        self.emit("stopped", replica, f"drained ({left} still in flight at stop)" if left else "drained")

    def _launched(self, replica: Replica) -> Launched:
        return Launched(replica.replica_id, replica.pool, replica.base_url, replica.handle)

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


def _victim_order(r: Replica) -> tuple[int, int, float, str]:
    not_ready_first = 0 if r.state is not ReplicaState.READY else 1
    return (not_ready_first, r.inflight, -r.requested_at, r.replica_id)
