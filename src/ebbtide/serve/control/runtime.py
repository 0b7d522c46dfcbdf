"""Everything one gateway process runs: per-pool fleets and controllers, the store, metrics, event reporting.

Each pool ticks in its own task at its own ``scaling.tick_s`` (``tick_pool``); an exception in one pool's tick is
reported with that pool's name and never stops another pool's tick. ``tick()`` ticks every pool once (what tests
call). The clock, the upstream client and the engine factory are injected, so a test can run the whole control
loop on a ``ManualClock`` with an in-process provider and upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from ebbtide.config import Config, PoolSpec, build_controller
from ebbtide.core.controller import Controller, ControllerState, ScaleDecision
from ebbtide.core.fleet import CANDIDATE
from ebbtide.core.queueing import ready_eta_s
from ebbtide.core.signals import PoolSignals, ReplicaState
from ebbtide.engines import build_engine
from ebbtide.engines.base import Engine, Health
from ebbtide.engines.factory import AnyEngineSpec
from ebbtide.providers.base import Launched, Provider
from ebbtide.serve.clock import Clock, PolicyClock, WallClock
from ebbtide.serve.control.fleet import Fleet
from ebbtide.serve.control.metrics import GatewayMetrics
from ebbtide.serve.control.phases import format_phases
from ebbtide.serve.control.rollouts import RolloutDriver
from ebbtide.serve.control.store import StateStore
from ebbtide.serve.control.sysmetrics import scrape_replicas
from ebbtide.serve.gateway.auth import Gatekeeper
from ebbtide.serve.gateway.broker import Replica
from ebbtide.serve.gateway.upstream import Upstream, UpstreamClient

if TYPE_CHECKING:
    from ebbtide.serve.shared.coordinator import Coordinator

__all__ = ["PoolRuntime", "Runtime"]

Reporter = Callable[[str, dict[str, Any]], None]
EngineFactory = Callable[[AnyEngineSpec], Engine]
DEFAULT_COLD_START_ESTIMATE_S = 60.0
MIN_TICK_PERIOD_S = 0.05
COLD_START_REREAD_S = 30.0


@dataclass(eq=False)
class PoolRuntime:
    spec: PoolSpec
    fleet: Fleet
    controller: Controller
    state: ControllerState
    arrivals_total: int = 0
    completions_total: int = 0
    late_total: int = 0  # completions slower end to end than slo.latency_p95_s
    last_arrival_s: float | None = None
    paused: bool = False
    last_recorded: tuple[Any, ...] = field(default=())
    last_decision: ScaleDecision | None = None
    service_s: float | None = None  # EWMA of how long a request held a slot (acquire → release)
    cost_usd: float = 0.0  # what the fleet's ledger had charged at the last gauge update
    replica_s: float = 0.0
    cold_p90_s: float | None = None
    cold_p90_read_at: float = float("-inf")
    output_tokens_total: int = 0
    rollout: RolloutDriver | None = None
    ticks: int = 0
    poked: bool = False
    inflight_labels: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.spec.name


class Runtime:
    def __init__(
        self,
        cfg: Config,
        store: StateStore,
        provider: Provider,
        policy_clock: PolicyClock,
        report: Reporter | None = None,
        clock: Clock | None = None,
        model_cache_dir: Path | None = None,
        gatekeeper: Gatekeeper | None = None,
        notice_dir: Path | None = None,
        upstream: Upstream | None = None,
        engines: EngineFactory | None = None,
    ) -> None:
        self.notice_dir = notice_dir
        self.gatekeeper = gatekeeper or Gatekeeper(None)
        self.cfg = cfg
        self.store = store
        self.provider = provider
        self.policy_clock = policy_clock
        self.clock: Clock = clock or WallClock()
        self.report = report or (lambda kind, data: None)
        self.metrics = GatewayMetrics()
        self.pools: dict[str, PoolRuntime] = {}
        self.session: aiohttp.ClientSession | None = None
        self.upstream: Upstream = upstream or UpstreamClient(clock=self.clock)
        self._engine = engines or (lambda spec: build_engine(spec, model_cache_dir))
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(len(store.replicas()) + 1)
        self.coordinator: Coordinator | None = None  # state: redis (one of several gateways; see serve/shared)

    @property
    def wall(self) -> Clock:
        """The injected clock (the dashboard's name for it)."""
        return self.clock

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        for spec in self.cfg.pools:
            variants = {v.name: self._engine(v.engine or spec.engine) for v in spec.variants}
            if spec.rollout is not None:
                variants[CANDIDATE] = self._engine(spec.rollout.candidate.engine or spec.engine)
            fleet = Fleet(
                spec, self.provider, self._engine(spec.engine), self.session, self._emitter(spec.name),
                self._next_id(spec.name), self.cfg.gateway.max_queue, self.clock, variants,
                self.cfg.gateway.priority_classes, self._phase_recorder(spec.name),
            )
            controller = build_controller(spec)
            pr = self.pools[spec.name] = PoolRuntime(spec, fleet, controller, controller.initial_state())
            if self.coordinator is None:  # several gateways: the leader adopts when it takes the lease
                await self._adopt(pr)
            if spec.rollout is not None:
                pr.rollout = RolloutDriver(spec.rollout, fleet, random.Random(0), self.clock)
        await self.tick()

    async def _adopt(self, pr: PoolRuntime) -> None:
        """Take over replicas a previous controller left running (same state dir); mark the dead ones failed."""
        adopted = 0
        for row in self.store.replicas(pr.spec.name, live_only=True):
            engine = pr.fleet.engines.get(row["variant"], pr.fleet.engine)
            replica = Replica(row["replica_id"], pr.spec.name, engine.slots, ReplicaState.STARTING,
                              row["base_url"], row["requested_at"], row["ready_at"], variant=row["variant"],
                              handle=row["handle"])
            launched = Launched(replica.replica_id, replica.pool, replica.base_url, replica.handle)
            if not await self.provider.alive(launched):
                replica.state = ReplicaState.FAILED
                pr.fleet.emit("failed", replica, "not running when the controller restarted")
                continue
            await self.provider.renew(launched)
            if row["state"] == ReplicaState.STANDBY.value:  # parked (a paused process cannot answer health)
                replica.state, replica.standby = ReplicaState.STANDBY, str(replica.handle.get("standby", "hot"))
                replica.parked = replica.standby
                pr.fleet.adopt(replica)
                pr.fleet.emit("adopted", replica, f"{replica.parked} standby after controller restart")
                continue
            adopted += 1
            if await engine.health(pr.fleet.session, replica.base_url) is Health.READY:
                replica.state = ReplicaState.READY
                pr.fleet.adopt(replica)
                pr.fleet.emit("adopted", replica, "healthy after controller restart")
            else:
                pr.fleet.adopt(replica, launched)
        pr.fleet.desired = adopted
        variants = [r.variant for r in pr.fleet.replicas.values()]
        if variants:
            pr.fleet.variant = max(set(variants), key=variants.count)

    # -- what admission and fallback read ------------------------------------------------------------------

    def cold_start_s(self, pr: PoolRuntime) -> float:
        """Expected cold start: the measured p90, else the configured estimate, else 60 s."""
        return (self._cold_start_p90_s(pr) or pr.spec.replica.cold_start_estimate_s
                or DEFAULT_COLD_START_ESTIMATE_S)

    def ready_eta_s(self, pr: PoolRuntime) -> float:
        """Seconds until a replica is expected ready (``core.queueing.ready_eta_s``)."""
        starting = [r.requested_at for r in pr.fleet.capacity() if r.state is not ReplicaState.READY]
        return ready_eta_s(starting, self.cold_start_s(pr), self.clock.now())

    def service_s(self, pr: PoolRuntime) -> float:
        """Mean slot time: the pool's EWMA, or half the latency SLO before any request finished (as the twin)."""
        return pr.service_s if pr.service_s is not None else self.cfg.slo.latency_p95_s / 2

    def _cold_start_p90_s(self, pr: PoolRuntime) -> float | None:
        """p90 of the pool's measured cold starts (≥ 3 samples), re-read from the store at most every 30 s."""
        now = self.clock.monotonic()
        if now - pr.cold_p90_read_at >= COLD_START_REREAD_S:
            measured = sorted(self.store.cold_starts_s(pr.spec.name))
            pr.cold_p90_s = measured[min(len(measured) - 1, int(0.9 * len(measured)))] if len(measured) >= 3 else None
            pr.cold_p90_read_at = now
        return pr.cold_p90_s

    # -- the control loop ----------------------------------------------------------------------------------

    def poke(self, pr: PoolRuntime) -> None:
        """Tick this pool soon (a request arrived at a pool with nothing to serve it), not at its next period."""
        if not pr.poked:
            pr.poked = True
            asyncio.get_running_loop().call_soon(self._poked_tick, pr)

    def _poked_tick(self, pr: PoolRuntime) -> None:
        pr.poked = False
        self.tick_pool(pr)

    def run_background(self) -> None:
        self.run_controllers()
        self._tasks.append(asyncio.ensure_future(self.run_health()))

    def run_controllers(self) -> None:
        """One task per pool, each at its own period."""
        self._tasks += [asyncio.ensure_future(self._pool_loop(pr)) for pr in self.pools.values()]

    async def _pool_loop(self, pr: PoolRuntime) -> None:
        while True:
            await asyncio.sleep(max(pr.spec.scaling.tick_s / self.policy_clock.scale, MIN_TICK_PERIOD_S))
            self.tick_pool(pr)

    async def tick(self) -> None:
        for pr in self.pools.values():
            self.tick_pool(pr)

    def tick_pool(self, pr: PoolRuntime) -> None:
        """One controller iteration of one pool; an error is reported with the pool and goes no further."""
        try:
            self._decide(pr, self.policy_clock.now())
            pr.fleet.forget_stopped()
        except Exception as exc:
            self.report("error", {"where": f"controller tick of pool {pr.name!r}", "pool": pr.name,
                                  "error": repr(exc)})
        try:
            self._update_gauges(pr)
        except Exception as exc:
            self.report("error", {"where": f"gauges of pool {pr.name!r}", "pool": pr.name, "error": repr(exc)})

    def _decide(self, pr: PoolRuntime, now_s: float) -> None:
        decision, pr.state = pr.controller.decide(self.signals(pr, now_s), pr.state, now_s)
        pr.ticks += 1
        pr.last_decision = decision
        if not self.leads():  # a follower keeps its controller warm on the summed signals; only the leader acts
            return
        self._record(pr, decision)
        if pr.rollout is not None:  # as the twin: the rollout's step first, then the controller's count
            pr.rollout.tick()
        if not pr.paused:
            pr.fleet.set_desired(decision.desired, decision.variant, decision.standby)

    def leads(self) -> bool:
        return self.coordinator is None or self.coordinator.leads()

    def signals(self, pr: PoolRuntime, now_s: float) -> PoolSignals:
        own = PoolSignals(
            pool=pr.spec.name,
            now_s=now_s,
            capacity=pr.fleet.desired,
            replicas=tuple(r.view() for r in pr.fleet.live_replicas()),
            queue_depth=pr.fleet.broker.queue_depth,
            arrivals_total=pr.arrivals_total,
            completions_total=pr.completions_total,
            last_arrival_s=pr.last_arrival_s,
            cold_start_p90_s=self._cold_start_p90_s(pr),
            late_total=pr.late_total,
        )
        return own if self.coordinator is None else self.coordinator.combine(own)

    def _record(self, pr: PoolRuntime, d: ScaleDecision) -> None:
        switching = d.variant is not None and d.variant != pr.fleet.variant
        considered = switching or d.direction != "none" or d.blocked_by or any(
            o.desired is not None and o.desired != d.current for o in d.opinions
        )
        key = (d.current, d.desired, d.blocked_by, d.min_replicas, d.max_replicas, d.variant,
               tuple(o.desired for o in d.opinions))
        if not considered or (d.direction == "none" and key == pr.last_recorded):
            return
        pr.last_recorded = key
        if switching:
            d = replace(d, notes=(*d.notes, f"switch variant {pr.fleet.variant} → {d.variant}"))
        self.store.add_decision(d)
        if d.direction != "none":
            self.metrics.decisions.labels(pr.spec.name, d.direction).inc()
        self.report("decision", {"decision": d})

    def _update_gauges(self, pr: PoolRuntime) -> None:
        """Replica, queue and in-flight gauges; cost and replica-hours grow by what the pool's ledger charged
        since the last update (each replica at its own variant's price, spot or on-demand, with billing)."""
        m, name, now = self.metrics, pr.name, self.clock.now()
        m.queue_depth.labels(name).set(pr.fleet.broker.queue_depth)
        for state in ("starting", "ready", "standby", "draining", "failed"):
            m.replicas.labels(name, state).set(sum(1 for r in pr.fleet.replicas.values() if r.state == state))
        ledger = pr.fleet.ledger
        cost, replica_s = ledger.total_usd(now), ledger.replica_seconds(now)
        m.cost.labels(name).inc(max(0.0, cost - pr.cost_usd))
        m.replica_hours.labels(name).inc(max(0.0, replica_s - pr.replica_s) / 3600.0)
        pr.cost_usd, pr.replica_s = max(cost, pr.cost_usd), max(replica_s, pr.replica_s)
        if pr.completions_total:
            m.cost_per_request.labels(name).set(pr.cost_usd / pr.completions_total)
        if pr.output_tokens_total:
            m.cost_per_mtok.labels(name).set(pr.cost_usd / pr.output_tokens_total * 1e6)
        live = {r.replica_id: r.inflight for r in pr.fleet.live_replicas()}
        for gone in pr.inflight_labels - live.keys():
            with contextlib.suppress(KeyError):
                m.inflight.remove(name, gone)
        for rid, inflight in live.items():
            m.inflight.labels(name, rid).set(inflight)
        pr.inflight_labels = set(live)

    # -- health, notices, events ---------------------------------------------------------------------------

    async def run_health(self) -> None:
        period = min(p.replica.health_interval_s for p in self.cfg.pools)
        while True:
            await asyncio.sleep(period)
            if self.leads():
                self._read_notices()
            if self.session is not None:
                try:
                    await scrape_replicas(self.metrics, self.session, dict(self.pools))
                except Exception as exc:
                    self.report("error", {"where": "replica metrics", "error": repr(exc)})
            for pr in self.pools.values():
                try:
                    if not self.leads():
                        await self.coordinator.keep_alive(pr)  # type: ignore[union-attr]
                        continue
                    await pr.fleet.check_health()
                except Exception as exc:
                    self.report("error", {"where": f"health check of pool {pr.name!r}", "pool": pr.name,
                                          "error": repr(exc)})

    def _read_notices(self) -> None:
        """Spot termination notices as files: ``<notice_dir>/<replica id>`` holding the notice in seconds (or empty)."""
        if self.notice_dir is None or not self.notice_dir.is_dir():
            return
        for path in self.notice_dir.iterdir():
            try:
                text = path.read_text().strip()
                notice = float(text) if text else None
            except (OSError, ValueError):
                notice = None
            path.unlink(missing_ok=True)
            for pr in self.pools.values():
                pr.fleet.preempt(path.name, notice)

    def _phase_recorder(self, pool: str) -> Callable[[Replica, str, dict[str, float]], None]:
        """A timed start goes to the store, the phase histogram and the event log."""

        emit = self._emitter(pool)

        def record(replica: Replica, kind: str, phases: dict[str, float]) -> None:
            self.store.add_start_phases(self.clock.now(), pool, replica.replica_id, kind, phases)
            for phase, seconds in phases.items():
                self.metrics.cold_start_phase.labels(pool, phase).observe(seconds)
            emit("phases", replica, f"{kind}: {format_phases(phases)}")

        return record

    def _next_id(self, pool: str) -> Callable[[], str]:
        if self.coordinator is not None:
            return lambda: self.coordinator.replica_id(pool)  # type: ignore[union-attr]
        return lambda: f"{pool}-{next(self._ids)}"

    def _emitter(self, pool: str) -> Callable[[str, Replica | None, str], None]:
        def emit(kind: str, replica: Replica | None, detail: str) -> None:
            now = self.clock.now()
            rid = replica.replica_id if replica else None
            self.store.add_event(now, pool, rid, kind, detail)
            if replica is not None:
                self.store.upsert_replica(
                    replica.replica_id, pool, replica.state.value, replica.base_url, replica.handle,
                    replica.requested_at, replica.ready_at,
                    now if replica.state in (ReplicaState.STOPPED, ReplicaState.FAILED) else None,
                    replica.variant,
                )
                if kind == "ready" and replica.ready_at is not None:
                    self.metrics.cold_start.labels(pool).observe(replica.ready_at - replica.requested_at)
            self.report("event", {"at": now, "pool": pool, "replica": rid, "kind": kind, "detail": detail})

        return emit

    async def close(self, keep_replicas: bool = False) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(pr.fleet.close(keep_replicas) for pr in self.pools.values()))
        self.upstream.close()
        if self.session is not None:
            await self.session.close()
        await self.provider.close()
