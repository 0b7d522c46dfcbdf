"""Everything one gateway process runs: per-pool fleets and controllers, the store, metrics, event reporting.

``tick()`` is one controller iteration (what tests call); ``run_controller()`` only waits for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from ebbtide.config import Config, PoolSpec, build_controller
from ebbtide.core.controller import Controller, ControllerState, ScaleDecision
from ebbtide.core.signals import PoolSignals, ReplicaState
from ebbtide.engines import build_engine
from ebbtide.engines.base import Health
from ebbtide.providers.base import Launched, Provider
from ebbtide.serve.auth import Gatekeeper
from ebbtide.serve.broker import Replica
from ebbtide.serve.clock import PolicyClock, WallClock
from ebbtide.serve.fleet import CANDIDATE, Fleet
from ebbtide.serve.metrics import GatewayMetrics
from ebbtide.serve.rollouts import RolloutDriver
from ebbtide.serve.store import Store
from ebbtide.serve.sysmetrics import scrape_replicas
from ebbtide.serve.upstream import UpstreamClient

__all__ = ["PoolRuntime", "Runtime"]

Reporter = Callable[[str, dict[str, Any]], None]
DEFAULT_COLD_START_ESTIMATE_S = 60.0


@dataclass(eq=False)
class PoolRuntime:
    spec: PoolSpec
    fleet: Fleet
    controller: Controller
    state: ControllerState
    arrivals_total: int = 0
    completions_total: int = 0
    last_arrival_s: float | None = None
    paused: bool = False
    last_recorded: tuple[Any, ...] = field(default=())
    last_decision: ScaleDecision | None = None
    service_ewma_s: float | None = None
    cost_usd: float = 0.0
    cold_p90_s: float | None = None
    cold_p90_read_at: float = float("-inf")
    output_tokens_total: int = 0
    rollout: RolloutDriver | None = None


def replica_price(spec: PoolSpec, replica: Replica) -> float:
    if replica.spot and spec.replica.spot is not None:
        return spec.replica.spot.hourly_usd
    if replica.variant == CANDIDATE and spec.rollout is not None and spec.rollout.candidate.hourly_usd is not None:
        return spec.rollout.candidate.hourly_usd
    for v in spec.variants:
        if v.name == replica.variant and v.hourly_usd is not None:
            return v.hourly_usd
    return spec.replica.hourly_usd


class Runtime:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        provider: Provider,
        policy_clock: PolicyClock,
        report: Reporter | None = None,
        wall: WallClock | None = None,
        model_cache_dir: Path | None = None,
        gatekeeper: Gatekeeper | None = None,
        notice_dir: Path | None = None,
    ) -> None:
        self.notice_dir = notice_dir
        self.model_cache_dir = model_cache_dir
        self.gatekeeper = gatekeeper or Gatekeeper(None)
        self.cfg = cfg
        self.store = store
        self.provider = provider
        self.policy_clock = policy_clock
        self.wall = wall or WallClock()
        self.report = report or (lambda kind, data: None)
        self.metrics = GatewayMetrics()
        self.pools: dict[str, PoolRuntime] = {}
        self.session: aiohttp.ClientSession | None = None
        self.upstream = UpstreamClient()
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(len(store.replicas()) + 1)
        self._last_cost_at = self.wall.monotonic()
        self._poked: asyncio.Future[None] | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=30)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        for spec in self.cfg.pools:
            engine = build_engine(spec.engine, self.model_cache_dir)
            variants = {v.name: build_engine(v.engine or spec.engine, self.model_cache_dir) for v in spec.variants}
            if spec.rollout is not None:
                variants[CANDIDATE] = build_engine(spec.rollout.candidate.engine or spec.engine, self.model_cache_dir)
            fleet = Fleet(
                spec, self.provider, engine, self.session, self._emitter(spec.name), self._next_id(spec.name),
                self.cfg.gateway.max_queue, self.wall, variants, self.cfg.gateway.priority_classes,
            )
            controller = build_controller(spec)
            self.pools[spec.name] = PoolRuntime(spec, fleet, controller, controller.initial_state())
            await self._adopt(self.pools[spec.name])
            if spec.rollout is not None:
                self.pools[spec.name].rollout = RolloutDriver(spec.rollout, fleet, random.Random(0))
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
            adopted += 1
            if await engine.health(pr.fleet.session, replica.base_url) is Health.READY:
                replica.state = ReplicaState.READY
                pr.fleet.replicas[replica.replica_id] = replica
                pr.fleet.emit("adopted", replica, "healthy after controller restart")
            else:
                pr.fleet.adopt(replica, launched)
        pr.fleet.desired = adopted
        variants = [r.variant for r in pr.fleet.replicas.values()]
        if variants:
            pr.fleet.variant = max(set(variants), key=variants.count)

    def ready_eta_s(self, pr: PoolRuntime) -> float:
        """When a replica is expected to be ready: measured p90 cold start, else the configured estimate."""
        estimate = self._cold_start_p90_s(pr) or pr.spec.replica.cold_start_estimate_s or DEFAULT_COLD_START_ESTIMATE_S
        starting = [r for r in pr.fleet.capacity() if r.state is not ReplicaState.READY]
        if not starting:
            return estimate
        elapsed = self.wall.now() - min(r.requested_at for r in starting)
        return max(0.5, estimate - elapsed)

    def poke(self) -> None:
        """Run a controller tick soon (a request arrived at a pool with no capacity)."""
        if self._poked is None or self._poked.done():
            self._poked = asyncio.ensure_future(self.tick())

    def run_background(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self.run_controller()),
            asyncio.ensure_future(self.run_health()),
        ]

    def _next_id(self, pool: str) -> Callable[[], str]:
        return lambda: f"{pool}-{next(self._ids)}"

    def _emitter(self, pool: str) -> Callable[[str, Replica | None, str], None]:
        def emit(kind: str, replica: Replica | None, detail: str) -> None:
            now = self.wall.now()
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

    def signals(self, pr: PoolRuntime, now_s: float) -> PoolSignals:
        return PoolSignals(
            pool=pr.spec.name,
            now_s=now_s,
            capacity=pr.fleet.desired,
            replicas=tuple(r.view() for r in pr.fleet.live_replicas()),
            queue_depth=pr.fleet.broker.queue_depth,
            arrivals_total=pr.arrivals_total,
            completions_total=pr.completions_total,
            last_arrival_s=pr.last_arrival_s,
            cold_start_p90_s=self._cold_start_p90_s(pr),
        )

    def _cold_start_p90_s(self, pr: PoolRuntime) -> float | None:
        """p90 of the pool's measured cold starts (≥ 3 samples), re-read from the store at most every 30 s."""
        now = self.wall.monotonic()
        if now - pr.cold_p90_read_at >= 30.0:
            measured = sorted(self.store.cold_starts_s(pr.spec.name))
            pr.cold_p90_s = measured[min(len(measured) - 1, int(0.9 * len(measured)))] if len(measured) >= 3 else None
            pr.cold_p90_read_at = now
        return pr.cold_p90_s

    async def tick(self) -> None:
        now_s = self.policy_clock.now()
        for pr in self.pools.values():
            decision, pr.state = pr.controller.decide(self.signals(pr, now_s), pr.state, now_s)
            pr.last_decision = decision
            self._record(pr, decision)
            if not pr.paused:
                pr.fleet.set_desired(decision.desired, decision.variant)
            if pr.rollout is not None:
                pr.rollout.tick()
            pr.fleet.forget_stopped()
        self._update_gauges()

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

    def _update_gauges(self) -> None:
        now = self.wall.monotonic()
        dt_h, self._last_cost_at = (now - self._last_cost_at) / 3600.0, now
        m = self.metrics
        m.inflight.clear()
        for name, pr in self.pools.items():
            live = pr.fleet.live_replicas()
            m.queue_depth.labels(name).set(pr.fleet.broker.queue_depth)
            for state in ("starting", "ready", "draining", "failed"):
                m.replicas.labels(name, state).set(sum(1 for r in pr.fleet.replicas.values() if r.state == state))
            cost = sum(replica_price(pr.spec, r) for r in live) * dt_h
            pr.cost_usd += cost
            m.cost.labels(name).inc(cost)
            m.replica_hours.labels(name).inc(len(live) * dt_h)
            if pr.completions_total:
                m.cost_per_request.labels(name).set(pr.cost_usd / pr.completions_total)
            if pr.output_tokens_total:
                m.cost_per_mtok.labels(name).set(pr.cost_usd / pr.output_tokens_total * 1e6)
            for r in live:
                m.inflight.labels(name, r.replica_id).set(r.inflight)

    async def run_controller(self) -> None:
        period = min(p.scaling.tick_s for p in self.cfg.pools) / self.policy_clock.scale
        while True:
            await asyncio.sleep(max(period, 0.05))
            try:
                await self.tick()
            except Exception as exc:
                self.report("error", {"where": "controller tick", "error": repr(exc)})

    async def run_health(self) -> None:
        period = min(p.replica.health_interval_s for p in self.cfg.pools)
        while True:
            await asyncio.sleep(period)
            self._read_notices()
            if self.session is not None:
                try:
                    await scrape_replicas(self.metrics, self.session, dict(self.pools))
                except Exception as exc:
                    self.report("error", {"where": "replica metrics", "error": repr(exc)})
            for pr in self.pools.values():
                try:
                    await pr.fleet.check_health()
                except Exception as exc:
                    self.report("error", {"where": "health check", "error": repr(exc)})

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
