"""SlotBroker: pick + count with no await between, FIFO waiters, bounded queue, no leaked slot on cancel."""

from __future__ import annotations

import asyncio

import pytest

from ebbtide.core.signals import ReplicaState
from ebbtide.serve.gateway.broker import QueueFull, Replica, Shed, SlotBroker


def make(n: int, slots: int = 1) -> tuple[list[Replica], SlotBroker]:
    replicas = [Replica(f"r{i}", "p", slots, ReplicaState.READY) for i in range(n)]
    return replicas, SlotBroker(lambda: replicas, max_queue=2)


async def test_least_outstanding_then_queue_then_fifo_wakeup() -> None:
    _, broker = make(2)
    a = await broker.acquire(1)
    b = await broker.acquire(1)
    assert {a.replica_id, b.replica_id} == {"r0", "r1"}
    first = asyncio.ensure_future(broker.acquire(5))
    second = asyncio.ensure_future(broker.acquire(5))
    await asyncio.sleep(0)
    assert broker.queue_depth == 2
    with pytest.raises(QueueFull):
        await broker.acquire(1)
    broker.release(a)
    assert (await first) is a and not second.done()
    broker.release(b)
    assert (await second) is b
    assert broker.queue_depth == 0


async def test_timed_out_waiter_leaves_the_queue_and_leaks_nothing() -> None:
    replicas, broker = make(1)
    held = await broker.acquire(1)
    with pytest.raises(TimeoutError):
        await broker.acquire(0.01)
    assert broker.queue_depth == 0
    broker.release(held)
    assert replicas[0].inflight == 0
    again = await broker.acquire(0.01)
    assert again.inflight == 1


async def test_cancel_after_assignment_returns_the_slot() -> None:
    replicas, broker = make(1)
    held = await broker.acquire(1)
    waiter = asyncio.ensure_future(broker.acquire(5))
    await asyncio.sleep(0)
    broker.release(held)
    waiter.cancel()
    try:
        got = await waiter
    except asyncio.CancelledError:
        assert replicas[0].inflight == 0
    else:
        assert got.inflight == 1, "a waiter that still got its replica owns the slot"
        broker.release(got)
        assert replicas[0].inflight == 0


async def test_new_ready_replica_wakes_waiters_and_excluded_replica_is_skipped() -> None:
    replicas, broker = make(1)
    waiter = asyncio.ensure_future(broker.acquire(5, exclude=frozenset({"r0"})))
    await asyncio.sleep(0)
    assert not waiter.done()
    replicas.append(Replica("r9", "p", 1, ReplicaState.STARTING))
    broker.wake()
    await asyncio.sleep(0)
    assert not waiter.done()
    replicas[-1].state = ReplicaState.READY
    broker.wake()
    assert (await waiter).replica_id == "r9"


async def test_interactive_waiter_is_served_first_and_a_full_queue_sheds_batch() -> None:
    _replicas, broker = make(1)
    held = await broker.acquire(1)
    batch1 = asyncio.ensure_future(broker.acquire(5, tenant="t", priority_class="batch"))
    batch2 = asyncio.ensure_future(broker.acquire(5, tenant="u", priority_class="batch"))
    await asyncio.sleep(0)
    assert broker.queue_depth == 2
    inter = asyncio.ensure_future(broker.acquire(5, tenant="v", priority_class="interactive"))
    await asyncio.sleep(0)
    with pytest.raises(Shed):
        await batch2
    assert broker.queue_depth == 2
    broker.release(held)
    assert (await inter) is held
    broker.release(held)
    assert (await batch1) is held
    fillers = []
    with pytest.raises(QueueFull):
        for _ in range(3):
            fillers.append(asyncio.ensure_future(broker.acquire(5, priority_class="interactive")))
            await asyncio.sleep(0)
        await broker.acquire(5, priority_class="interactive")
    for task in fillers:
        task.cancel()
    await asyncio.gather(*fillers, return_exceptions=True)
