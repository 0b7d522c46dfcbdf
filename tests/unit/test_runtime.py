"""serve's Runtime on a ManualClock with an in-process provider and upstream (no sockets): the fleet carries out
core's plan (recorded actions), the ledger bills each replica, admission answers as core says, and each pool
ticks on its own (one pool's failing controller never stops another's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ebbtide.config import Config
from ebbtide.core.fleet import Drain, Start
from ebbtide.core.quota import QuotaLimits
from ebbtide.core.signals import ReplicaState
from ebbtide.serve.clock import ManualClock, PolicyClock
from ebbtide.serve.control.runtime import PoolRuntime, Runtime
from ebbtide.serve.control.store import Store
from ebbtide.serve.gateway.auth import Caller
from tests.serve_fakes import FakeProvider, FakeUpstream, send

T0 = 1_700_000_000.0
COLD_S = 30.0
BATCH = Caller("nightly", "batch", QuotaLimits())


def pool(name: str = "p", **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "engine": {"kind": "openai", "url": "http://fake/v1", "slots": 1},
        "replica": {"hourly_usd": 3.6, "cold_start_estimate_s": COLD_S},
        "scaling": {"min_replicas": 1, "max_replicas": 3, "scale_out_cooldown_s": 0, "scale_in_cooldown_s": 60,
                    "policies": [{"kind": "queue_depth", "target": 1, "scale_down_stabilization_s": 30}]},
    }
    for key, value in over.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and key in spec else value
    return spec


def config(*pools: dict[str, Any], **top: Any) -> Config:
    return Config.model_validate({"pools": list(pools) or [pool()], **top})


async def until(predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> None:
    """Wait (real time) for a state the fleet's tasks reach on their own; generous, never a guessed delay."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Rig:
    def __init__(self, cfg: Config, tmp_path: Path) -> None:
        self.clock = ManualClock(T0)
        self.provider = FakeProvider(self.clock, COLD_S)
        self.upstream = FakeUpstream()
        self.errors: list[dict[str, Any]] = []
        self.store = Store(tmp_path / "ebbtide.db")
        self.runtime = Runtime(cfg, self.store, self.provider, PolicyClock(1.0, self.clock), self._report,
                               clock=self.clock, upstream=self.upstream, engines=self.provider.engine)

    def _report(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "error":
            self.errors.append(data)

    def pr(self, name: str = "p") -> PoolRuntime:
        return self.runtime.pools[name]

    def ready(self, name: str = "p") -> int:
        return sum(1 for r in self.pr(name).fleet.replicas.values() if r.state is ReplicaState.READY)

    async def warm(self, n: int, name: str = "p") -> None:
        """Let the starting replicas' cold start pass on the clock, then wait until the fleet saw them ready."""
        await until(lambda: not [r for r in self.pr(name).fleet.replicas.values()
                                 if r.state is ReplicaState.REQUESTED], f"every replica of {name} launched")
        self.clock.advance(COLD_S)
        await until(lambda: self.ready(name) == n, f"{n} ready replicas in {name}")


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[[Config], Any]]:
    rigs: list[Rig] = []

    async def make(cfg: Config) -> Rig:
        rig = Rig(cfg, tmp_path / str(len(rigs)))
        rigs.append(rig)
        await rig.runtime.start()
        return rig

    yield make
    for rig in rigs:
        rig.upstream.release()
        await rig.runtime.close()
        rig.store.close()


def cost_counter(runtime: Runtime, name: str) -> float:
    text = runtime.metrics.render().decode()
    line = next(ln for ln in text.splitlines() if ln.startswith(f'ebbtide_cost_usd_total{{pool="{name}"}}'))
    return float(line.split()[-1])


async def test_scale_out_on_queue_depth_then_in_records_core_actions_and_bills_each_replica(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(config())
    runtime, fleet = rig.runtime, rig.pr().fleet
    await rig.warm(1)
    rig.upstream.hold()
    requests = [asyncio.ensure_future(send(runtime, "p")) for _ in range(3)]
    await until(lambda: fleet.broker.queue_depth == 2 and rig.upstream.waiting == 1, "1 running, 2 queued")

    rig.clock.advance(1.0)
    await runtime.tick()  # queue 2 per replica vs target 1 → 2 replicas
    await rig.warm(2)  # the new replica takes a waiter as soon as it is ready
    await until(lambda: rig.upstream.waiting == 2 and fleet.broker.queue_depth == 1, "the new replica serving")
    rig.upstream.release()
    assert [status for status, _, _ in await asyncio.gather(*requests)] == [200, 200, 200]

    rig.clock.advance(61.0)  # past the scale-in cooldown and the policy's stabilization
    await runtime.tick()
    scaled_in_at = rig.clock.now()
    await until(lambda: rig.provider.terminated == ["p-2"], "the drained replica stopped")
    assert list(fleet.actions) == [
        (T0, Start("default", False, "desired 1")),
        (T0 + COLD_S + 1, Start("default", False, "desired 2")),
        (scaled_in_at, Drain("p-2", "scale-in to 1")),  # the newer of two idle replicas goes first
    ]
    await runtime.tick()
    per_s = 3.6 / 3600  # each replica from its request to its stop
    expected = (scaled_in_at - T0) * per_s + (scaled_in_at - (T0 + COLD_S + 1)) * per_s
    assert cost_counter(runtime, "p") == pytest.approx(expected)


async def test_per_hour_billing_is_honoured_live(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(config(pool(replica={"billing": "per_hour"},
                                             scaling={"min_replicas": 2, "policies": []})))
    rig.clock.advance(10.0)
    await rig.runtime.tick()
    assert cost_counter(rig.runtime, "p") == pytest.approx(2 * 3.6)  # two started hours, after 10 s


async def test_admission_refuses_at_once_as_core_says(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(config(pool(scaling={"min_replicas": 1, "max_replicas": 1, "policies": []}),
                                        gateway={"max_queue": 3}))
    runtime, fleet = rig.runtime, rig.pr().fleet
    await rig.warm(1)
    rig.upstream.hold()
    held = [asyncio.ensure_future(send(runtime, "p")) for _ in range(3)]
    await until(lambda: fleet.broker.queue_depth == 2, "1 running, 2 queued")
    # (2 ahead + 1) x 1.5 s (half the 3 s latency SLO: nothing has finished yet) / 1 slot = 4.5 s > 2 s
    status, body, headers = await send(runtime, "p", deadline_s=2.0)
    assert (status, body["error"]["code"]) == (429, "wait_exceeds_deadline")
    assert headers["Retry-After"] == "5"
    batch = asyncio.ensure_future(send(runtime, "p", caller=BATCH))
    await until(lambda: fleet.broker.queue_depth == 3, "the queue full")
    status, body, _ = await send(runtime, "p", caller=BATCH)  # full, and no lower class to shed
    assert (status, body["error"]["code"]) == (429, "queue_full")
    interactive = asyncio.ensure_future(send(runtime, "p"))
    status, body, _ = await batch  # shed for the interactive request
    assert (status, body["error"]["code"]) == (429, "queue_full") and "shed" in body["error"]["message"]
    rig.upstream.release()
    assert [s for s, _, _ in await asyncio.gather(*held, interactive)] == [200] * 4


async def test_a_waiter_still_queued_at_its_deadline_gets_503(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(config(pool(scaling={"min_replicas": 1, "max_replicas": 1, "policies": []}),
                                        slo={"latency_p95_s": 0.2, "ttft_p95_s": 0.1}))
    await rig.warm(1)
    rig.upstream.hold()
    first = asyncio.ensure_future(send(rig.runtime, "p"))
    await until(lambda: rig.upstream.waiting == 1, "the slot taken")
    waiter = asyncio.ensure_future(send(rig.runtime, "p", deadline_s=0.3))  # admitted (0.1 s est.), never served
    await until(lambda: rig.pr().fleet.broker.queue_depth == 1, "the request queued")
    rig.clock.advance(0.299)
    for _ in range(50):  # every task that can run does: the waiter is still waiting
        await asyncio.sleep(0)
    assert not waiter.done(), "the deadline runs on the injected clock: not yet"
    rig.clock.advance(0.001)
    status, body, headers = await waiter
    assert (status, body["error"]["code"]) == (503, "no_capacity") and "Retry-After" in headers
    rig.upstream.release()
    assert (await first)[0] == 200


async def test_at_zero_a_hopeless_deadline_gets_503_at_once_and_still_starts_a_replica(rig_factory: Any) -> None:
    rig: Rig = await rig_factory(config(pool(scaling={"min_replicas": 0, "policies": []})))
    assert rig.pr().fleet.desired == 0
    status, body, headers = await send(rig.runtime, "p", deadline_s=5.0)
    assert (status, body["error"]["code"], headers["Retry-After"]) == (503, "cold_start", "30")
    assert "deadline" in body["error"]["message"]
    await until(lambda: rig.pr().fleet.desired == 1, "the poked tick starting a replica")
    await rig.warm(1)
    status, body, _ = await send(rig.runtime, "p")
    assert status == 200 and body["usage"]["completion_tokens"] == 2


async def test_fallback_takes_overflow_only_when_the_primary_cannot_serve_in_time(rig_factory: Any) -> None:
    big = pool("big", fallback="small", scaling={"min_replicas": 1, "max_replicas": 1, "policies": []})
    small = pool("small", scaling={"min_replicas": 1, "max_replicas": 1, "policies": []})
    rig: Rig = await rig_factory(config(big, small))
    await rig.warm(1, "big")
    await until(lambda: rig.ready("small") == 1, "both pools ready")
    rig.upstream.hold()
    first = asyncio.ensure_future(send(rig.runtime, "big"))
    await until(lambda: rig.upstream.waiting == 1, "big's slot taken")
    # big: (0 + 1) x 1.5 s / 1 slot = 1.5 s ≤ 3 s SLO - 1.5 s service: still the primary
    second = asyncio.ensure_future(send(rig.runtime, "big"))
    await until(lambda: rig.pr("big").fleet.broker.queue_depth == 1, "a waiter on big")
    third = asyncio.ensure_future(send(rig.runtime, "big"))  # 3.0 s > 1.5 s and big is at max: overflow
    await until(lambda: rig.upstream.waiting == 2, "the small pool serving")
    assert rig.upstream.urls[-1].startswith("http://fake/small-")
    rig.upstream.release()
    answers = await asyncio.gather(first, second, third)
    assert [(s, h["X-Ebbtide-Served-By"]) for s, _, h in answers] == [(200, "big"), (200, "big"), (200, "small")]


class Exploding:
    def __init__(self, inner: Any) -> None:
        self.rules = inner.rules
        self.inner = inner

    def initial_state(self) -> Any:
        return self.inner.initial_state()

    def decide(self, *args: Any) -> Any:
        raise RuntimeError("policy bug")


async def test_one_pools_failing_tick_is_reported_with_its_pool_and_never_stops_another(rig_factory: Any) -> None:
    cfg = config(pool("a"), pool("b"), pool("slow", scaling={"tick_s": 1200.0}))
    rig: Rig = await rig_factory(cfg)
    runtime = rig.runtime
    a, b, slow = rig.pr("a"), rig.pr("b"), rig.pr("slow")
    a.controller = Exploding(a.controller)  # type: ignore[assignment]
    before = b.ticks
    await runtime.tick()
    assert b.ticks == before + 1
    assert [(e["pool"], e["error"]) for e in rig.errors] == [("a", "RuntimeError('policy bug')")]
    assert "controller tick of pool 'a'" in rig.errors[0]["where"]

    slow_ticks = slow.ticks
    runtime.policy_clock = PolicyClock(20.0, rig.clock)  # a, b: every 0.05 s; slow: every 60 s
    runtime.run_controllers()
    await until(lambda: b.ticks >= before + 4 and len(rig.errors) >= 4, "b ticking in its loop while a fails")
    assert {e["pool"] for e in rig.errors} == {"a"}
    assert slow.ticks == slow_ticks, "each pool at its own tick_s, not the smallest of all pools"


async def test_requests_slower_than_the_slo_latency_are_counted_late_in_the_signals(rig_factory: Any) -> None:
    """``late_total`` (what ``predictive``'s late guard reads) counts the completions that took longer end to end
    than slo.latency_p95_s, as the twin counts them; a request within it is not late."""
    rig: Rig = await rig_factory(config(slo={"latency_p95_s": 3.0, "ttft_p95_s": 1.0}))
    await rig.warm(1)
    for _ in range(2):
        assert (await send(rig.runtime, "p"))[0] == 200  # the clock does not move: 0 s each
    rig.upstream.hold()
    slow = asyncio.ensure_future(send(rig.runtime, "p"))
    await until(lambda: rig.upstream.waiting == 1, "the request on the replica")
    rig.clock.advance(3.5)  # longer than the 3 s P95 target
    rig.upstream.release()
    assert (await slow)[0] == 200
    signals = rig.runtime.signals(rig.pr(), rig.clock.now())
    assert (signals.completions_total, signals.late_total) == (3, 1)
