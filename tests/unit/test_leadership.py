"""Leadership among gateways on a ManualClock with no Redis: two Coordinators share an in-memory state that keeps
core/lease.py's rules (what the Redis scripts do), over Runtimes with the in-process provider. The leader starts
the fleet; the follower mirrors it and sums the signals; when the leader stops renewing, the follower takes the
lease after the TTL, adopts the same replicas (no duplicate start) and says so in the decision log; the deposed
leader's fenced actions are refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from ebbtide.config import Config
from ebbtide.core.lease import MemoryLeases
from ebbtide.core.signals import ReplicaState
from ebbtide.serve.clock import ManualClock, PolicyClock
from ebbtide.serve.control.runtime import Runtime
from ebbtide.serve.shared.coordinator import Coordinator, fence_provider
from ebbtide.serve.shared.keys import RedisKeyStore
from ebbtide.serve.shared.quota import SharedQuota
from ebbtide.serve.shared.redis_state import Deposed
from ebbtide.serve.shared.store import RedisStore
from tests.serve_fakes import FakeProvider, FakeUpstream
from tests.unit.test_runtime import COLD_S, T0, config, until

TTL = 6.0


class MemoryState:
    """The part of ``RedisState`` the coordinator uses, in memory, with the lease rules of core/lease.py."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock, self.leases = clock, MemoryLeases()
        self.tables: dict[str, dict[str, str]] = {"replicas": {}, "desired": {}, "actions": {}}
        self.signals: dict[str, dict[str, dict[str, Any]]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.seq = 0

    def claim(self, who: str, ttl_s: float, may_lead: bool = True) -> Any:
        return self.leases.claim(who, self.clock.now(), ttl_s, may_lead)

    def release(self, who: str, token: int) -> bool:
        self.leases.release(who, token)
        return True

    def fenced_put(self, who: str, token: int, table: str, items: dict[str, str]) -> bool:
        if not self.leases.fenced(who, token, self.clock.now()):
            return False
        self.tables[table].update(items)
        return True

    def replica_rows(self) -> list[dict[str, Any]]:
        rows = [json.loads(v) for v in self.tables["replicas"].values()]
        return sorted(rows, key=lambda r: (r["requested_at"], r["replica_id"]))

    def desired(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self.tables["desired"].items()}

    def exchange_signals(self, gateway: str, mine: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for pool, data in mine.items():
            self.signals.setdefault(pool, {})[gateway] = data
        return {pool: dict(self.signals[pool]) for pool in mine}

    def next_replica_number(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, log: str, row: dict[str, Any]) -> int:
        self.logs.setdefault(log, []).append(row)
        return len(self.logs[log])

    def read_log(self, log: str, since: float, pool: str | None, limit: int) -> list[dict[str, Any]]:
        return [r for r in self.logs.get(log, []) if r["at"] >= since and pool in (None, r["pool"])][-limit:]

    def keys_version(self) -> int:
        return 0

    def key_rows(self) -> tuple[int, dict[str, dict[str, Any]]]:
        return 0, {}

    def drop_replicas(self, replica_ids: list[str]) -> bool:
        return True

    def close(self) -> None:
        return None


class Gateway:
    def __init__(self, cfg: Config, state: MemoryState, provider: FakeProvider, tmp: Path, name: str) -> None:
        clock = state.clock
        shared = cast(Any, state)
        self.store = RedisStore(shared, tmp / f"{name}.db")
        self.errors: list[dict[str, Any]] = []
        self.coord = Coordinator(cfg.state, shared, self.store, RedisKeyStore(shared, clock),
                                 SharedQuota(shared, lambda: 2), clock, self._report)
        self.coord.me = name
        self.provider = provider
        self.runtime = Runtime(cfg, self.store, fence_provider(provider, self.coord), PolicyClock(1.0, clock),
                               self._report, clock=clock, upstream=FakeUpstream(), engines=provider.engine)
        self.coord.attach(self.runtime)

    def _report(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "error":
            self.errors.append(data)

    async def start(self) -> None:
        await self.runtime.start()
        await self.coord.start(run_loop=False)

    def ready(self) -> set[str]:
        return {r.replica_id for r in self.runtime.pools["p"].fleet.replicas.values()
                if r.state is ReplicaState.READY}


async def advance(clock: ManualClock, seconds: float, *gws: Gateway) -> None:
    """Move the clock in 1 s steps, each gateway syncing at each step (as their loops would)."""
    while seconds > 0:
        step = min(1.0, seconds)
        clock.advance(step)
        seconds -= step
        for gw in gws:
            await gw.coord.sync_once()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[ManualClock, MemoryState, Gateway, Gateway]]:
    clock = ManualClock(T0)
    state = MemoryState(clock)
    cfg = config(state={"backend": "redis", "url": "redis://unused:1/0", "lease_ttl_s": TTL})
    first = FakeProvider(clock, COLD_S)
    second = FakeProvider(clock, COLD_S)
    second.launched_at = first.launched_at  # one cloud: both gateways see the same replicas
    a, b = Gateway(cfg, state, first, tmp_path, "a"), Gateway(cfg, state, second, tmp_path, "b")
    await a.start()
    await b.start()
    yield clock, state, a, b
    for gw in (a, b):
        await gw.runtime.close(keep_replicas=True)


async def test_the_follower_takes_over_after_the_ttl_adopts_the_fleet_and_the_old_leader_is_fenced(
        pair: tuple[ManualClock, MemoryState, Gateway, Gateway]) -> None:
    clock, state, a, b = pair
    assert a.coord.leads() and not b.coord.leads() and b.coord.leader == "a"
    await a.runtime.tick()
    await until(lambda: len(a.provider.launched_at) == 1, "the leader launched the pool's minimum")
    await advance(clock, COLD_S, a, b)
    await until(lambda: len(a.ready()) == 1, "ready at the leader")
    await a.coord.sync_once()
    await b.coord.sync_once()
    assert b.ready() == a.ready(), "the follower routes to the leader's replica"
    await b.runtime.tick()  # a follower decides in shadow: it starts nothing
    assert len(a.provider.launched_at) == 1 and not b.store.pending()

    a.runtime.pools["p"].arrivals_total = 7
    await a.coord.sync_once()
    await b.coord.sync_once()
    base = b.coord.peers["p"].arrivals
    a.runtime.pools["p"].arrivals_total = 12
    await a.coord.sync_once()
    await b.coord.sync_once()
    signals = b.runtime.signals(b.runtime.pools["p"], clock.now())
    assert b.coord.peers["p"].arrivals - base == 5 and signals.arrivals_total >= 5, "the sum of both gateways"
    late_before = signals.late_total
    a.runtime.pools["p"].late_total += 3
    await a.coord.sync_once()
    await b.coord.sync_once()
    late_after = b.runtime.signals(b.runtime.pools["p"], clock.now()).late_total
    assert late_after - late_before == 3, "late completions are summed across gateways too"

    # a stops renewing (SIGKILLed): b may not take the lease before it lapses, then does
    clock.advance(TTL - 1)
    await b.coord.sync_once()
    assert not b.coord.leads() and not a.coord.leads(), "a stopped believing before the lease lapsed"
    clock.advance(1.01)
    await b.coord.sync_once()
    assert b.coord.leads() and b.coord.token == a.coord.token + 1  # type: ignore[operator]
    assert b.ready() == a.ready() and len(a.provider.launched_at) == 1
    await b.runtime.tick()
    assert len(a.provider.launched_at) == 1, "no duplicate replica after the takeover"
    await b.coord.sync_once()  # its queued writes (the decision note) go out with the next sync
    notes = [n for d in state.logs["decisions"] for n in d["notes"]]
    assert any(f"b took the lease (token {b.coord.token}) from a; adopted 1 replica(s)" in n for n in notes), notes

    a.coord.belief_until = float("inf")  # a stalled leader that has not noticed yet
    with pytest.raises(Deposed):
        await a.coord.fence("launch", "p-99")
    assert not a.coord.leads() and a.coord.token is None, "a refused fence deposes the old leader at once"
    assert "p-99" not in state.tables["actions"]
