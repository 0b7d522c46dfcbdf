"""One fleet, two clocks: the same scripted scenario through ``serve`` and through the twin must give the same ordered
fleet actions and the same answer (200/429/503) for every request.

``serve`` runs for real — Runtime, Fleet, broker, admission, dispatch, proxy — on a ManualClock with in-process
stand-ins for the network (no sockets): replicas healthy ``COLD_S`` after launch, an upstream that answers each
request ``ttft + (output - 1) × tpot`` of clock time after it was sent. The driver moves the clock from event to
event (arrivals, ticks, readiness, completions, spot notices) and lets serve's tasks settle between them. The
twin gets the same arrivals (time, output tokens, class), a calibration table with the same TTFT/TPOT at every
batch size and the same fixed cold start, so each request holds a slot exactly as long in both.

A difference here means a decision, removal, admission or cost rule lives in one driver and not the other.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ebbtide.config import Config
from ebbtide.core.fleet import Drain, FleetAction, Promote, Start
from ebbtide.core.quota import QuotaLimits
from ebbtide.core.signals import ReplicaState
from ebbtide.serve.clock import ManualClock, PolicyClock
from ebbtide.serve.control.runtime import Runtime
from ebbtide.serve.control.store import Store
from ebbtide.serve.gateway.auth import Caller
from ebbtide.sim.run import RunOptions, Simulation
from tests.serve_fakes import FakeProvider, send

T0 = 1_834_704_000.0  # 2028-02-23T00:00:00Z
# Odd figures, so that no completion, readiness, tick or arrival falls at the same instant as another.
COLD_S, TTFT_S, TPOT_S, PROMPT, WAKE_S = 30.2513, 0.5071, 0.1013, 100, 2.3117
# (t, "start", variant, spot) | (t, "standby", variant, tier) | (t, "promote", ordinal, reason)
# | (t, "drain", ordinal, reason)
Action = tuple[float, str, Any, Any]


@dataclass
class Scenario:
    name: str
    config: dict[str, Any]
    arrivals: list[tuple[float, int, str]]  # (t since start, output tokens, class)
    duration_s: float
    notices: list[tuple[float, str, int]] = field(default_factory=list)  # (t, pool, k-th started replica)
    expect: dict[str, int] = field(default_factory=dict)  # at least this many: what the scenario must exercise


def pool(name: str, *, slots: int = 2, replica: dict[str, Any] | None = None, **scaling: Any) -> dict[str, Any]:
    return {
        "name": name,
        "engine": {"kind": "openai", "url": "http://fake/v1", "slots": slots},
        "replica": {"hourly_usd": 3.6, "cold_start_estimate_s": COLD_S, "drain_timeout_s": 60, **(replica or {})},
        "scaling": {"min_replicas": 1, "max_replicas": 3, "scale_out_cooldown_s": 0, "scale_in_cooldown_s": 20,
                    "policies": [{"kind": "queue_depth", "target": 1, "scale_down_stabilization_s": 20}], **scaling},
        "sim": {"service": {"kind": "table", "path": "table.json"}, "cold_start": {"kind": "fixed", "seconds": COLD_S},
                "initial_replicas": 0},
    }


def arrivals(rng: random.Random, start_s: float, end_s: float, rate: float, classes: dict[str, float],
             outputs: tuple[int, int] = (5, 40)) -> list[tuple[float, int, str]]:
    out, t = [], start_s
    names, weights = list(classes), list(classes.values())
    while True:
        t += rng.expovariate(rate)
        if t >= end_s:
            return out
        out.append((round(t, 3) + 0.0007, rng.randint(*outputs), rng.choices(names, weights)[0]))


def scenarios() -> list[Scenario]:
    r = random.Random(3)
    one = {"interactive": 1.0}
    burst = arrivals(r, 40, 70, 4.0, one) + arrivals(r, 70, 200, 0.3, one)
    steady = arrivals(r, 40, 90, 4.0, one) + arrivals(r, 90, 260, 1.2, one)
    spot = {"hourly_usd": 3.6, "cold_start_estimate_s": COLD_S, "spot": {"hourly_usd": 1, "notice_s": 15,
                                                                          "min_on_demand": 1}}
    switch = copy.deepcopy(pool("p", min_replicas=2))
    switch["variants"] = [{"name": "small", "hourly_usd": 1.0}]
    switch["scaling"]["policies"] = [{"kind": "schedule", "tz": "UTC", "actions": [
        {"cron": "0 23 * * *", "min_replicas": 2, "max_replicas": 3, "variant": "default"},
        {"cron": "2 0 * * *", "min_replicas": 2, "max_replicas": 3, "variant": "small"}]}]
    two = {"interactive": 0.5, "batch": 0.5}
    hot = pool("p", replica={"standby": {"hot": {"wake_s": WAKE_S}}}, standby={"tier": "hot", "count": 1})
    hot["sim"]["initial_standby"] = 0
    return [
        Scenario("scale-out", {"pools": [pool("p")]}, burst, 260, expect={"start": 3, "drain": 1}),
        Scenario("scale-in under load", {"pools": [pool("p")]}, steady, 320, expect={"start": 3, "drain": 2}),
        Scenario("spot notice", {"pools": [pool("p", replica=spot, min_replicas=2)]},
                 arrivals(r, 40, 160, 1.5, one), 220, notices=[(80.5, "p", 2)],
                 expect={"spot termination notice": 1, "spot start": 2}),
        Scenario("variant switch", {"pools": [switch]}, arrivals(r, 40, 220, 1.5, one), 280,
                 expect={"replaced by variant small": 2, "small": 2}),
        Scenario("fallback under overload", {"pools": [{**pool("p", max_replicas=1), "fallback": "f"},
                                                       pool("f", min_replicas=1, max_replicas=1)],
                                             "slo": {"latency_p95_s": 4.0}},
                 arrivals(r, 40, 120, 3.0, one), 240, expect={"fallbacks": 10}),
        Scenario("priority shedding", {"pools": [_with_classes(pool("p", max_replicas=1), two)],
                                       "gateway": {"max_queue": 6, "priority_classes": ["interactive", "batch"]}},
                 arrivals(r, 40, 120, 3.0, two), 240, expect={"429 shed for a higher class": 5}),
        Scenario("hot standby", {"pools": [hot], "gateway": {"max_queue": 8}},
                 arrivals(r, 40, 70, 6.0, one) + arrivals(r, 70, 260, 0.4, one),
                 320, expect={"promote": 1, "standby": 2, "drain": 1}),
    ]


def _with_classes(spec: dict[str, Any], classes: dict[str, float]) -> dict[str, Any]:
    return {**spec, "sim": {**spec["sim"], "classes": classes}}


# -- the twin ------------------------------------------------------------------------------------------------


class Scripted:
    name = "scripted"

    def __init__(self, arrivals: list[tuple[float, int, str]], classes: list[str]) -> None:
        self.arrivals, self.classes = arrivals, classes

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Any]:
        yield ([t for t, _, _ in self.arrivals], [PROMPT] * len(self.arrivals), [o for _, o, _ in self.arrivals],
               [self.classes.index(c) for _, _, c in self.arrivals])


def run_twin(sc: Scenario, cfg: Config, base: Path) -> tuple[dict[str, list[Action]], list[int], dict[str, int]]:
    primary = cfg.pools[0]
    sim = Simulation(cfg, primary, Scripted(sc.arrivals, ["interactive"]), RunOptions(T0, sc.duration_s,
                                                                                      base_dir=base))
    sim.traffic = Scripted(sc.arrivals, sim.class_names)
    sim.outcomes = []
    by_name = {p.spec.name: p for p in sim.pools}
    for t, name, k in sc.notices:
        p = by_name[name]
        sim.clock.push(t, lambda at, rid, p=p: p.on_preempt(at, p.replicas[rid]), f"{name}-{k:05d}")
    sim.run()
    actions = {name: [_norm(t, a, lambda rid: int(rid.rsplit("-", 1)[1])) for t, a in p.actions]
               for name, p in by_name.items()}
    answered = dict(sim.outcomes)
    seen = {"fallbacks": sim.fallbacks, **sim.results.rejected}
    for acts in actions.values():
        for _, kind, what, detail in acts:
            key = ("spot start" if detail is True else what) if kind == "start" else detail
            seen[kind] = seen.get(kind, 0) + 1
            seen[key] = seen.get(key, 0) + 1
    return actions, [answered.get(t, 0) for t, _, _ in sc.arrivals], seen


def _norm(t: float, action: FleetAction, ordinal: Callable[[str], int]) -> Action:
    if isinstance(action, Start) and action.standby is not None:
        return (round(t, 6), "standby", action.variant, action.standby)
    if isinstance(action, Start):
        return (round(t, 6), "start", action.variant, action.spot)
    if isinstance(action, Promote):
        return (round(t, 6), "promote", ordinal(action.replica_id), action.reason)
    assert isinstance(action, Drain)
    return (round(t, 6), "drain", ordinal(action.replica_id), action.reason)


# -- serve -----------------------------------------------------------------------------------------------------


class ScriptedUpstream:
    """Answers a request ``ttft + (max_tokens - 1) × tpot`` of clock time after it was sent."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, asyncio.Event]] = []

    async def post(self, url: str, body: bytes, timeout_s: float) -> Any:
        from tests.serve_fakes import FakeUpstream

        out = json.loads(body)["max_tokens"]
        gate = asyncio.Event()
        entry = (self.clock.now() + TTFT_S + (out - 1) * TPOT_S, gate)
        self.pending.append(entry)
        await gate.wait()
        self.pending.remove(entry)
        return await FakeUpstream().post(url, body, timeout_s)

    def next_due(self) -> float:
        return min((due for due, gate in self.pending if not gate.is_set()), default=float("inf"))

    def release_due(self) -> None:
        for due, gate in self.pending:
            if due <= self.clock.now():
                gate.set()

    def close(self) -> None:
        return None


async def settle() -> None:
    """Let every task that can run do so: serve's request path has no timers, only hand-offs."""
    for _ in range(60):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)
    await settle()


async def run_serve(sc: Scenario, cfg: Config, tmp: Path) -> tuple[dict[str, list[Action]], list[int]]:
    clock = ManualClock(T0)
    provider = FakeProvider(clock, COLD_S, WAKE_S)
    upstream = ScriptedUpstream(clock)
    store = Store(tmp / "ebbtide.db")
    runtime = Runtime(cfg, store, provider, PolicyClock(1.0, clock), clock=clock, upstream=upstream,
                      engines=provider.engine)
    ordinals: dict[str, int] = {}
    await runtime.start()
    futures: list[asyncio.Future[Any]] = []
    try:
        tick_s = {name: pr.spec.scaling.tick_s for name, pr in runtime.pools.items()}
        next_tick = {name: t for name, t in tick_s.items()}
        arrivals = list(sc.arrivals)
        notices = list(sc.notices)
        await _settle_fleet(runtime, provider, ordinals)
        while True:
            now = clock.now() - T0
            candidates = [
                arrivals[0][0] if arrivals else float("inf"),
                notices[0][0] if notices else float("inf"),
                min(next_tick.values()),
                upstream.next_due() - T0,
                min((provider.due(rid) for rid in provider.launched_at if _starting(runtime, rid)),
                    default=float("inf")) - T0,
            ]
            t = min(candidates)
            if t >= sc.duration_s:
                break
            clock.advance(max(0.0, t - now))
            upstream.release_due()
            await settle()
            await _settle_fleet(runtime, provider, ordinals)
            if notices and notices[0][0] <= t:
                _, name, k = notices.pop(0)
                rid = next(r for r, o in ordinals.items() if o == k and r.startswith(f"{name}-"))
                runtime.pools[name].fleet.preempt(rid)
                await settle()
            for name in runtime.pools:  # config order, as the twin's ticks were first pushed
                if next_tick[name] <= t:
                    runtime.tick_pool(runtime.pools[name])
                    next_tick[name] += tick_s[name]
                    await settle()
            while arrivals and arrivals[0][0] <= t:
                _, out, cls = arrivals.pop(0)
                caller = Caller(cls, cls, QuotaLimits())
                futures.append(asyncio.ensure_future(_send(runtime, cfg.pools[0].name, caller, out)))
                await settle()
            await _settle_fleet(runtime, provider, ordinals)
        answers = [f.result() if f.done() else 0 for f in futures]
        actions = {name: [_norm(t - T0, a, lambda rid: ordinals[rid]) for t, a in pr.fleet.actions]
                   for name, pr in runtime.pools.items()}
        return actions, answers
    finally:
        for future in futures:
            future.cancel()  # still queued or running when the scenario ended
        await asyncio.gather(*futures, return_exceptions=True)
        await runtime.close()
        store.close()


def _starting(runtime: Runtime, rid: str) -> bool:
    return any(rid in pr.fleet.replicas and pr.fleet.replicas[rid].state is ReplicaState.STARTING
               for pr in runtime.pools.values())


async def _settle_fleet(runtime: Runtime, provider: FakeProvider, ordinals: dict[str, int]) -> None:
    """Wait until the fleet has seen every replica the clock made healthy, and name new replicas by start order."""
    for pr in runtime.pools.values():
        await until(lambda pr=pr: not any(r.state is ReplicaState.REQUESTED for r in pr.fleet.replicas.values()),
                    "launches")
        for rid in pr.fleet.replicas:
            if rid not in ordinals:
                ordinals[rid] = 1 + sum(1 for r in ordinals if r.startswith(f"{pr.name}-"))
        due = [rid for rid, r in pr.fleet.replicas.items()
               if r.state is ReplicaState.STARTING and provider.healthy(r.base_url)]
        await until(lambda pr=pr, due=due: all(pr.fleet.replicas[rid].state is not ReplicaState.STARTING
                                               for rid in due), f"{due} ready")


async def _send(runtime: Runtime, pool_name: str, caller: Caller, out: int) -> int:
    status, _, _ = await send(runtime, pool_name, caller=caller, max_tokens=out)
    return status


# -- the comparison ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sc", scenarios(), ids=lambda sc: sc.name)
async def test_serve_and_the_twin_take_the_same_actions_and_answers(sc: Scenario, tmp_path: Path) -> None:
    levels = [{"concurrency": c, "ttft_p50_s": TTFT_S, "tpot_p50_s": TPOT_S} for c in range(1, 9)]
    (tmp_path / "table.json").write_text(json.dumps({"slots": 8, "prompt_tokens": PROMPT, "levels": levels}))
    cfg = Config.model_validate(sc.config)
    twin_actions, twin_answers, seen = run_twin(sc, cfg, tmp_path)
    assert all(seen.get(what, 0) >= n for what, n in sc.expect.items()), f"not exercised: {sc.expect} vs {seen}"
    assert len(twin_answers) > 80 and twin_answers.count(200) > 40 and 0 not in twin_answers
    live_actions, live_answers = await run_serve(sc, cfg, tmp_path)
    assert live_actions == twin_actions
    assert live_answers == twin_answers
