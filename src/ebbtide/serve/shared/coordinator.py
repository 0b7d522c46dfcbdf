"""One gateway among several: the sync loop, the leader lease, and the fence in front of the provider.

Every ``state.sync_interval_s`` each gateway, in one worker-thread call so the event loop never waits on Redis:
claims the lease (renews it when held; takes it when it lapsed, unless ``--gateway-only``), publishes its per-pool
signals (arrivals, completions, queue, in-flight per replica) and reads everyone's, reads the replica registry and
the leader's desired counts, refreshes the API-key mirror and flushes its queued writes. Back on the loop it applies
what it read: a follower mirrors the registry into its fleets; the leader decides on the sum of all gateways'
signals (``combine``). Only the leader runs policies' actions: every launch and terminate goes through
:class:`FencedProvider`, which first writes the action to Redis *only if this gateway's (id, token) is the live
lease*, so a deposed leader cannot act even if it has not noticed yet.

A gateway that cannot reach Redis keeps serving from what it last read (replicas, keys; quotas at its share), and
a leader that cannot renew stops acting when its own view of the term ends (``core.lease.believe_until``), before
any follower can take the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from ebbtide.config import PoolSpec, StateSpec
from ebbtide.core.controller import ScaleDecision
from ebbtide.core.lease import Lease, believe_until
from ebbtide.engines.base import Engine
from ebbtide.providers.base import Launched, Provider
from ebbtide.serve.clock import Clock
from ebbtide.serve.shared.follow import PeerTotals, adopt_mirror, combine, mirror_registry
from ebbtide.serve.shared.keys import RedisKeyStore
from ebbtide.serve.shared.quota import SharedQuota
from ebbtide.serve.shared.redis_state import Deposed, RedisState
from ebbtide.serve.shared.store import RedisStore

if TYPE_CHECKING:
    from ebbtide.core.signals import PoolSignals
    from ebbtide.serve.control.runtime import PoolRuntime, Runtime

__all__ = ["Coordinator", "fence_provider", "gateway_id"]

DEAD_KEPT = 50
STALE_PEER_S = 5.0  # a gateway whose signals are older than this is gone: its queue and in-flight stop counting
Reporter = Callable[[str, dict[str, Any]], None]


def gateway_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class SyncResult:
    lease: Lease | None
    claimed: bool
    sent_at: float
    signals: dict[str, dict[str, dict[str, Any]]]
    rows: list[dict[str, Any]]
    desired: dict[str, dict[str, Any]]


class Coordinator:
    def __init__(self, spec: StateSpec, state: RedisState, store: RedisStore, keys: RedisKeyStore,
                 quota: SharedQuota, clock: Clock, report: Reporter, may_lead: bool = True) -> None:
        self.spec, self.state, self.store, self.keys, self.quota = spec, state, store, keys, quota
        self.clock, self.report, self.may_lead = clock, report, may_lead
        self.me = gateway_id()
        self.token: int | None = None
        self.leader: str | None = None
        self.belief_until = float("-inf")
        self.connected = False
        self.peers: dict[str, PeerTotals] = {}
        self.live_gateways = 1
        self.runtime: Runtime | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_claim = float("-inf")

    # -- what the runtime asks ---------------------------------------------------------------------------------

    def leads(self) -> bool:
        return self.token is not None and self.clock.monotonic() < self.belief_until

    def combine(self, own: PoolSignals) -> PoolSignals:
        return combine(own, self.peers.get(own.pool))

    def replica_id(self, pool: str) -> str:
        try:
            return f"{pool}-{self.state.next_replica_number()}"
        except (redis.ConnectionError, redis.TimeoutError):  # the fence will refuse the launch anyway
            return f"{pool}-{self.me}-{secrets.token_hex(2)}"

    async def fence(self, action: str, replica_id: str) -> None:
        """Record ``action`` on ``replica_id`` in Redis iff this gateway holds the live lease; else :class:`Deposed`."""
        token = self.token
        if token is None or not self.leads():
            raise Deposed(f"{action} {replica_id}: this gateway is not the leader")
        stamp = json.dumps({"action": action, "token": token, "by": self.me, "at": self.clock.now()})

        def write() -> bool:
            self.store.flush()  # the registry row of the replica goes first
            return self.state.fenced_put(self.me, token, "actions", {replica_id: stamp})

        try:
            landed = await asyncio.to_thread(write)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Deposed(f"{action} {replica_id}: Redis did not confirm the lease ({exc})") from None
        if not landed:
            self._step_down("the lease moved on (a fenced write was refused)")
            raise Deposed(f"{action} {replica_id}: refused, token {token} is no longer the live lease")

    async def keep_alive(self, pr: PoolRuntime) -> None:
        """A follower keeps the replicas it routes to from exiting as orphans (renews their lease, nothing more)."""
        assert self.runtime is not None
        for r in pr.fleet.live_replicas():
            if r.base_url:
                await self.runtime.provider.renew(Launched(r.replica_id, r.pool, r.base_url, r.handle))

    # -- the loop ------------------------------------------------------------------------------------------------

    def attach(self, runtime: Runtime) -> None:
        """Before ``runtime.start()``: its fleets then take replica ids from Redis and skip solo adoption."""
        self.runtime = runtime
        runtime.coordinator = self

    async def start(self, run_loop: bool = True) -> None:
        """After ``runtime.start()``: every fleet follows until this gateway holds the lease. ``run_loop`` False:
        the caller runs :meth:`sync_once` itself (a test on a hand-moved clock)."""
        for pr in self._pools():
            pr.fleet.acting = False
        await self.sync_once()
        if run_loop:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.spec.sync_interval_s)
            try:
                await self.sync_once()
            except Exception as exc:  # one bad sync must not end the loop
                self.report("error", {"where": "state sync", "error": repr(exc)})

    async def sync_once(self) -> None:
        mine = self._my_signals()
        due = self.clock.monotonic() - self._last_claim >= self.spec.lease_ttl_s / 3 or self.token is None
        try:
            result = await asyncio.to_thread(self._io, mine, due)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._lost(exc)
            return
        if not self.connected:
            self.report("state", {"message": f"state: connected to Redis as {self.me}"})
        self.connected, self.quota.up = True, True
        await self._apply(result)

    def _io(self, mine: dict[str, dict[str, Any]], claim_due: bool) -> SyncResult:
        """Everything one sync needs from Redis (worker thread)."""
        sent_at = self.clock.monotonic()
        lease = self.state.claim(self.me, self.spec.lease_ttl_s, self.may_lead)[0] if claim_due else None
        self.keys.refresh()
        self.store.flush()
        self.quota.flush()
        return SyncResult(lease, claim_due, sent_at, self.state.exchange_signals(self.me, mine),
                          self.state.replica_rows(), self.state.desired())

    async def _apply(self, r: SyncResult) -> None:
        if r.claimed:
            if r.lease is not None and r.lease.holder == self.me:
                self.belief_until, self._last_claim = believe_until(r.sent_at, self.spec.lease_ttl_s), r.sent_at
                if self.token != r.lease.token:
                    await self._take_over(r.lease)
            elif self.token is not None:
                self._step_down(f"the lease is held by {r.lease.holder}" if r.lease else "the lease lapsed")
            self.leader = r.lease.holder if r.lease is not None else None
        self._fold_signals(r.signals)
        self.quota.expire(self.clock.monotonic())  # the gatekeeper's clock: leases are timed on it
        if not self.leads():
            self._follow(r.rows, r.desired)
        else:
            for pr in self._pools():
                self.store.put_desired(pr.name, pr.fleet.desired, pr.fleet.variant)
            self._prune(r.rows)

    def _prune(self, rows: list[dict[str, Any]]) -> None:
        """The leader keeps the newest ``DEAD_KEPT`` stopped or failed rows per pool (cold-start history)."""
        dead: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["state"] in ("stopped", "failed"):
                dead.setdefault(row["pool"], []).append(row)
        old = [r["replica_id"] for pool_rows in dead.values() for r in pool_rows[:-DEAD_KEPT]]
        if old:
            for rid in old:
                self.store.rows.pop(rid, None)
            self.store.queue(lambda rs: rs.drop_replicas(old))

    def _fold_signals(self, signals: dict[str, dict[str, dict[str, Any]]]) -> None:
        now, alive = self.clock.now(), {self.me}
        for pool, by_gw in signals.items():
            fresh = {gw: d for gw, d in by_gw.items() if gw != self.me and now - d["at"] < STALE_PEER_S}
            alive |= fresh.keys()
            self.peers.setdefault(pool, PeerTotals()).update(fresh)
        self.live_gateways = len(alive)

    def _follow(self, rows: list[dict[str, Any]], desired: dict[str, dict[str, Any]]) -> None:
        self.store.rows = {r["replica_id"]: r for r in rows}
        for pr in self._pools():
            if mirror_registry(pr.fleet, rows):
                pr.fleet.broker.wake()
            if pr.name in desired:
                pr.fleet.desired = int(desired[pr.name]["desired"])

    async def _take_over(self, lease: Lease) -> None:
        previous, self.token = self.leader, lease.token
        self.store.term = (self.me, lease.token)
        self.report("state", {"message": f"state: {self.me} is the leader (token {lease.token})"})
        assert self.runtime is not None
        for pr in self._pools():
            adopted, failed = await adopt_mirror(pr.fleet, self.runtime.provider)
            pr.fleet.acting = True
            pr.last_recorded = ()
            note = (f"leader: {self.me} took the lease (token {lease.token})"
                    + (f" from {previous}" if previous and previous != self.me else "")
                    + f"; adopted {adopted} replica(s)" + (f", {failed} found gone" if failed else ""))
            self._note(pr, note)

    def _step_down(self, why: str) -> None:
        if self.token is None:
            return
        self.token, self.belief_until, self.store.term = None, float("-inf"), None
        now = self.clock.now()
        for pr in self._pools():
            pr.fleet.acting = False
            for rid in list(pr.fleet.replicas):  # the next leader bills them: never two gateways at once
                if pr.fleet.ledger.is_open(rid):
                    pr.fleet.ledger.close(rid, now)
            self.store.add_event(self.clock.now(), pr.name, None, "follower", f"{self.me} stopped leading: {why}")
        self.report("state", {"message": f"state: {self.me} stopped leading: {why}"})

    def _lost(self, exc: Exception) -> None:
        if self.connected:
            self.report("error", {"where": "state sync", "error": f"Redis unreachable, serving from what this "
                                  f"gateway knows: {exc!r}"})
        self.connected = False
        if self.token is not None and not self.leads():
            self._step_down("could not renew the lease in time")

    def _note(self, pr: PoolRuntime, note: str) -> None:
        """A leadership change, in the decision log (``ebbtide decisions``) and as an event."""
        now = self.runtime.policy_clock.now() if self.runtime else self.clock.now()
        d = pr.last_decision
        current = pr.fleet.desired
        self.store.add_decision(ScaleDecision(
            at_s=now, pool=pr.name, current=current, desired=current,
            min_replicas=d.min_replicas if d else pr.spec.scaling.min_replicas,
            max_replicas=d.max_replicas if d else pr.spec.scaling.max_replicas,
            bounds_source=d.bounds_source if d else "config", blocked_by=None, opinions=(), notes=(note,)))
        self.store.add_event(self.clock.now(), pr.name, None, "leader", note)
        self.report("event", {"at": self.clock.now(), "pool": pr.name, "replica": None, "kind": "leader",
                              "detail": note})

    def _my_signals(self) -> dict[str, dict[str, Any]]:
        now = self.clock.now()
        return {pr.name: {"at": now, "arrivals": pr.arrivals_total, "completions": pr.completions_total,
                          "late": pr.late_total,
                          "queue": pr.fleet.broker.queue_depth, "last_arrival": pr.last_arrival_s,
                          "inflight": {r.replica_id: r.inflight for r in pr.fleet.live_replicas() if r.inflight}}
                for pr in self._pools()}

    def _pools(self) -> list[PoolRuntime]:
        return list(self.runtime.pools.values()) if self.runtime is not None else []

    async def close(self) -> None:
        """Stop syncing; a leader hands the lease back so a follower takes over at its next sync."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        token = self.token
        self._step_down("shutting down")
        with contextlib.suppress(redis.RedisError):
            await asyncio.to_thread(self.store.flush)
            if token is not None:
                await asyncio.to_thread(self.state.release, self.me, token)


def fence_provider(provider: Provider, coordinator: Coordinator) -> Provider:
    """Put the provider behind the fence: a launch or terminate happens only after Redis confirmed the lease.

    The two methods are replaced on the instance (whatever else the provider offers is untouched). A refused
    terminate leaves the replica running: the live leader adopts it and decides.
    """
    launch, terminate = provider.launch, provider.terminate

    async def fenced_launch(pool: PoolSpec, engine: Engine, replica_id: str) -> Launched:
        await coordinator.fence("launch", replica_id)
        return await launch(pool, engine, replica_id)

    async def fenced_terminate(launched: Launched, grace_s: float) -> None:
        try:
            await coordinator.fence("terminate", launched.replica_id)
        except Deposed as exc:
            coordinator.report("error", {"where": "terminate", "error": str(exc)})
            return
        await terminate(launched, grace_s)

    provider.launch = fenced_launch  # type: ignore[method-assign]
    provider.terminate = fenced_terminate  # type: ignore[method-assign]
    return provider
