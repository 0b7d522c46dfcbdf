"""serve's fleet carries out the standby plan on a ManualClock with in-process fakes: a warm reserve member only
stages its weights (no process) and is launched from local disk when promoted; a hot one is paused once loaded,
billed at its tier's price, and resumed when promoted; a member promoted while still loading just serves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from ebbtide.config import Config
from ebbtide.core.signals import ReplicaState
from ebbtide.core.standby import StandbyWish
from ebbtide.serve.clock import ManualClock
from ebbtide.serve.control.fleet import Fleet
from tests.serve_fakes import FakeProvider

COLD_S, WAKE_S = 30.0, 2.0


def pool(tier: str) -> Config:
    return Config.model_validate({"pools": [{
        "name": "p", "engine": {"kind": "openai", "url": "http://fake/v1", "slots": 2},
        "replica": {"hourly_usd": 3.6, "standby": {"hot": {"hourly_usd": 0.36, "wake_s": WAKE_S},
                                                     "warm": {"hourly_usd": 0.036, "wake_s": 60}}},
        "scaling": {"min_replicas": 0, "max_replicas": 2, "standby": {"tier": tier, "count": 1}},
    }]})  # fmt: skip


async def until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def state_of(fleet: Fleet, rid: str) -> ReplicaState:
    return fleet.replicas[rid].state


def states(fleet: Fleet) -> list[tuple[str, str, str | None]]:
    return [(r.replica_id, r.state.value, r.standby or r.parked) for r in fleet.replicas.values()]


async def make(tier: str) -> tuple[Fleet, FakeProvider, ManualClock, list[tuple[str, str]], aiohttp.ClientSession]:
    clock = ManualClock(1000.0)
    provider = FakeProvider(clock, COLD_S, WAKE_S)
    spec = pool(tier).pools[0]
    events: list[tuple[str, str]] = []
    ids = iter(f"p-{i}" for i in range(1, 100))
    session = aiohttp.ClientSession()
    fleet = Fleet(spec, provider, provider.engine(spec.engine), session,
                  lambda kind, r, detail: events.append((kind, r.replica_id if r else "")), ids.__next__, 10, clock)
    return fleet, provider, clock, events, session


async def test_a_warm_standby_stages_only_and_is_launched_from_local_disk_when_promoted() -> None:
    fleet, provider, clock, events, session = await make("warm")
    try:
        fleet.set_desired(0)
        await until(lambda: ("standby", "p-1") in events, "p-1 parked")
        assert provider.staged == ["p-1"] and "p-1" not in provider.launched_at  # weights staged, no process
        assert states(fleet) == [("p-1", "standby", "warm")]
        assert fleet.ledger.total_usd(clock.now() + 3600) == pytest.approx(0.036)  # an hour at the warm price
        fleet.set_desired(1)
        await until(lambda: "p-1" in provider.launched_at, "p-1 launched on promotion")
        assert ("promoted", "p-1") in events and provider.staged == ["p-1", "p-2"]  # the reserve refills
        clock.advance(COLD_S)
        await until(lambda: fleet.replicas["p-1"].state is ReplicaState.READY, "p-1 ready")
        assert fleet.replicas["p-1"].milestones["health_ok"] == pytest.approx(COLD_S)  # timed from the promotion
    finally:
        await fleet.close()
        await session.close()


async def test_a_hot_standby_is_paused_once_loaded_and_resumed_when_promoted() -> None:
    fleet, provider, clock, events, session = await make("hot")
    try:
        fleet.set_desired(0)
        await until(lambda: "p-1" in provider.launched_at, "p-1 launched")
        clock.advance(COLD_S)
        await until(lambda: ("standby", "p-1") in events, "p-1 parked")
        assert provider.paused == {"p-1"} and state_of(fleet, "p-1") is ReplicaState.STANDBY
        before = fleet.ledger.total_usd(clock.now())
        clock.advance(3600)
        assert fleet.ledger.total_usd(clock.now()) - before == pytest.approx(0.36)  # an hour parked: the hot price
        parked_at = clock.now()
        fleet.set_desired(1)
        await until(lambda: "p-1" not in provider.paused, "p-1 resumed")
        assert state_of(fleet, "p-1") is ReplicaState.STARTING  # waking: not routed yet
        clock.advance(WAKE_S)
        await until(lambda: fleet.replicas["p-1"].state is ReplicaState.READY, "p-1 ready after its wake")
        kinds = [k for k, rid in events if rid == "p-1"]
        assert kinds.index("standby") < kinds.index("promoted") < kinds.index("ready")
        # p-1 in full while loading, at the hot price for the parked hour, in full again from the promotion; the
        # refill p-2 in full from the promotion
        assert parked_at == clock.now() - WAKE_S
        assert fleet.ledger.total_usd(clock.now()) == pytest.approx(3.6 * (COLD_S + WAKE_S + WAKE_S) / 3600 + 0.36)
        fleet.set_desired(1, standby=StandbyWish("hot", 0))  # the refill is no longer wanted: drained
        await until(lambda: fleet.replicas["p-2"].state is ReplicaState.STOPPED, "p-2 drained")
        before = fleet.ledger.total_usd(clock.now())
        clock.advance(3600)
        assert fleet.ledger.total_usd(clock.now()) - before == pytest.approx(3.6)  # p-1 alone, serving
    finally:
        await fleet.close()
        await session.close()


async def test_a_member_promoted_while_loading_serves_once_ready_and_is_never_paused() -> None:
    fleet, provider, clock, events, session = await make("hot")
    try:
        fleet.set_desired(0)
        await until(lambda: "p-1" in provider.launched_at, "p-1 launched")
        fleet.set_desired(1)  # before it is loaded
        assert ("promoted", "p-1") in events and "p-2" in fleet.replicas  # the refill starts at once
        clock.advance(COLD_S)
        await until(lambda: fleet.replicas["p-1"].state is ReplicaState.READY, "p-1 ready")
        assert "p-1" not in provider.paused and ("standby", "p-1") not in events
    finally:
        await fleet.close()
        await session.close()
