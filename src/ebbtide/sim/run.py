"""Drive the real ``core/`` over modelled time: arrivals, completions, controller ticks, replica lifecycle.

The controller is ``config.build_controller(pool)`` - the same object ``serve`` builds - called every
``scaling.tick_s`` with a ``PoolSignals`` snapshot; requests are placed by ``core.routing.least_outstanding``
and admitted to a FIFO gateway queue by ``core.queueing.admit`` when every slot is busy. Capacity follows the
controller's desired count the way the live fleet does: new replicas cold-start (and may fail and be
replaced); scale-in removes not-ready replicas first, then the fewest in-flight, newest first, and drains them
(cost stops when they stop).

Usage: ``summary = Simulation(cfg, pool, traffic, RunOptions(start_epoch_s, 86400, seed=1)).run()``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

import numpy as np

from ebbtide.config import Config, PoolSpec, build_controller, default_threads_per_replica
from ebbtide.core.controller import Controller, ScaleDecision
from ebbtide.core.cost import Price, fleet_cost
from ebbtide.core.queueing import admit, estimate_wait_s
from ebbtide.core.routing import least_outstanding
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView
from ebbtide.sim.clock import COMPLETE, DRAIN_TIMEOUT, MINUTE, PREEMPT, READY, STARTUP_FAILED, TICK, EventClock
from ebbtide.sim.coldstart import ColdStartModel
from ebbtide.sim.host import SharedHost
from ebbtide.sim.replica import ServiceModel, SimReplica, service_model
from ebbtide.sim.results import Mark, Results
from ebbtide.sim.spec import SimSpec
from ebbtide.sim.spot import preempt, spot_rate
from ebbtide.sim.traffic import Arrivals, Traffic

__all__ = ["RunOptions", "Simulation"]

MINUTE_S = 60.0
INF = float("inf")
READY_S, STARTING_S, DRAINING_S = ReplicaState.READY, ReplicaState.STARTING, ReplicaState.DRAINING


@dataclass(frozen=True, slots=True)
class RunOptions:
    start_epoch_s: float
    duration_s: float
    seed: int = 0
    base_dir: Path | None = None  # resolves relative paths in the pool's ``sim:`` block
    tz: str = "UTC"  # for reports only; policies read their own time zones


class Simulation:
    def __init__(
        self,
        cfg: Config,
        pool: PoolSpec,
        traffic: Traffic,
        options: RunOptions,
        progress: Callable[[float], None] | None = None,
        controller: Controller | None = None,
        service: ServiceModel | None = None,
    ) -> None:
        self.cfg, self.pool, self.traffic, self.opt, self.progress = cfg, pool, traffic, options, progress
        sim = pool.sim or SimSpec.model_validate({})
        # ``service`` overrides the pool's ``sim.service`` (e.g. the planner's roofline via ``replica.from_curve``).
        self.service: ServiceModel = service or service_model(sim.service, pool.engine.slots, options.base_dir)
        self.cold = ColdStartModel(
            sim.cold_start, sim.startup_failure_probability, pool.replica.startup_timeout_s
        )
        self.controller = controller or build_controller(pool)
        self.cstate = self.controller.initial_state()
        self.price = Price(
            pool.replica.hourly_usd,
            pool.replica.billing,
            pool.replica.spot.hourly_usd if pool.replica.spot else None,
        )
        self.results = Results(
            slo_latency_s=cfg.slo.latency_p95_s, slo_ttft_s=cfg.slo.ttft_p95_s, window_s=cfg.slo.window_s
        )
        self.clock = EventClock(0.0)
        self.rng = random.Random(options.seed * 1_000_003 + 17)
        # Per-request service spread draws from its own stream, so cold starts stay as they were for a seed.
        self.spread_rng = random.Random(options.seed * 1_000_003 + 29) if self.service.has_spread else None
        self.host = (
            None
            if sim.host is None
            else SharedHost(
                sim.host,
                getattr(pool.engine, "threads", None)
                or default_threads_per_replica(pool.scaling.max_replicas, int(sim.host.cores)),
            )
        )
        self.replicas: dict[str, SimReplica] = {}
        self.views: list[ReplicaView] = []
        self.queue: deque[tuple[float, int, int]] = deque()
        self.intervals: list[tuple[float, float]] = []
        self.capacity = self.next_id = self.seq = self.ticks = 0
        self.arrivals = self.arrivals_before_minute = self.cold_starts = self.startup_failures = 0
        self.max_queue = self.max_capacity = 0
        self.last_arrival_s: float | None = None
        self.mean_latency_s = self.service.latency_s(self.service.prompt_ref_tokens, 300, self.service.slots)
        self.bounds: tuple[int, int] | None = None
        self.cold_start_total_s = 0.0
        self.preemptions = 0
        self.cold_start_p90_s = self.cold.quantile_s(0.9)
        self.preempt_rate_per_s, self.notice_s = spot_rate(pool, sim)
        n0 = sim.initial_replicas if sim.initial_replicas is not None else pool.scaling.min_replicas
        for _ in range(n0):
            self._start_replica(0.0, warm=True)

    # -- replicas --------------------------------------------------------------------------------------------

    def _start_replica(self, now_s: float, warm: bool = False) -> None:
        self.next_id += 1
        r = SimReplica(f"r{self.next_id:05d}", self.service, now_s, self.spread_rng)
        self.replicas[r.replica_id] = r
        self.capacity += 1
        self.max_capacity = max(self.max_capacity, self.capacity)
        if warm:
            r.set_state(READY_S, now_s)
        else:
            out = self.cold.outcome(self.rng)
            self.clock.push(now_s + out.after_s, READY if out.ready else STARTUP_FAILED, r)
        r.pos = len(self.views)
        self.views.append(r.view)
        if self.preempt_rate_per_s > 0:
            self.clock.push(now_s + self.rng.expovariate(self.preempt_rate_per_s), PREEMPT, r)
        if self.host is not None:
            self._host_update(now_s)

    def _stop(self, r: SimReplica, now_s: float, state: ReplicaState = ReplicaState.STOPPED) -> None:
        if r.state in (READY_S, STARTING_S):
            self.capacity -= 1
        r.set_state(state)
        r.stopped_s = now_s
        self.intervals.append((r.requested_s, now_s))
        del self.replicas[r.replica_id]
        self.views = []
        for live in self.replicas.values():
            live.pos = len(self.views)
            self.views.append(live.view)
        if self.host is not None:
            self._host_update(now_s)

    def _host_update(self, now_s: float, about_to_serve: SimReplica | None = None) -> None:
        assert self.host is not None
        self.host.update(self.replicas.values(), now_s, self._reschedule, about_to_serve)

    def _reschedule(self, r: SimReplica) -> None:
        nf = r.next_finish_s()
        if nf < r.scheduled_s:
            r.scheduled_s = nf
            heappush(self.clock.heap, (nf, next(self.clock.counter), COMPLETE, r))

    def _reconcile(self, desired: int, now_s: float) -> None:
        while self.capacity < desired:
            self._start_replica(now_s)
        excess = self.capacity - desired
        if excess <= 0:
            return
        live = [r for r in self.replicas.values() if r.state in (READY_S, STARTING_S)]
        # Same victim order as serve/fleet.py: not ready first, fewest in-flight, newest, id.
        live.sort(key=lambda r: (r.state is READY_S, r.batch, -r.requested_s, r.replica_id))
        for r in live[:excess]:
            if r.state is STARTING_S or r.batch == 0:
                self._stop(r, now_s)
            else:
                self.capacity -= 1
                r.set_state(DRAINING_S)
                self.views[r.pos] = r.view
                self.clock.push(now_s + self.pool.replica.drain_timeout_s, DRAIN_TIMEOUT, r)

    # -- requests --------------------------------------------------------------------------------------------

    def _place(self, r: SimReplica, now_s: float, arrival_s: float, prompt: int, output: int) -> None:
        self.seq += 1
        if self.host is not None and not r.batch:
            self._host_update(now_s, r)
        r.start_request(now_s, self.seq, arrival_s, prompt, output)
        self.views[r.pos] = r.view
        nf = r.next_finish_s()
        if nf < r.scheduled_s:
            r.scheduled_s = nf
            heappush(self.clock.heap, (nf, next(self.clock.counter), COMPLETE, r))

    def _drain_queue(self, now_s: float) -> None:
        queue, deadline = self.queue, self.cfg.gateway.default_deadline_s
        while queue:
            rid = least_outstanding(self.views)
            if rid is None:
                return
            arrival_s, prompt, output = queue.popleft()
            if now_s - arrival_s > deadline:
                self.results.reject("deadline")
                continue
            self._place(self.replicas[rid], now_s, arrival_s, prompt, output)

    def _arrive(self, now_s: float, prompt: int, output: int) -> None:
        self.arrivals += 1
        self.last_arrival_s = now_s
        if not self.queue:
            rid = least_outstanding(self.views)
            if rid is not None:  # the common case: an empty queue and a free replica
                self._place(self.replicas[rid], now_s, now_s, prompt, output)
                return
        ready = [r for r in self.replicas.values() if r.state is READY_S]
        starting = [r for r in self.replicas.values() if r.state is STARTING_S]
        eta = min(
            (max(0.0, self.cold.mean_s - (now_s - r.requested_s)) for r in starting), default=self.cold.mean_s
        )
        wait = estimate_wait_s(len(self.queue), sum(r.slots for r in ready), self.mean_latency_s, eta)
        gw = self.cfg.gateway
        adm = admit(len(self.queue), gw.max_queue, wait, gw.default_deadline_s, len(ready))
        if not adm.accepted:
            kind = (
                "queue full"
                if "queue full" in adm.reason
                else "no ready replica"
                if not ready
                else "wait > deadline"
            )
            self.results.reject(f"{adm.status} {kind}")
            return
        self.queue.append((now_s, prompt, output))
        if len(self.queue) > self.max_queue:
            self.max_queue = len(self.queue)

    def _on_complete(self, r: SimReplica, now_s: float) -> None:
        if now_s != r.scheduled_s or (r.state is not READY_S and r.state is not DRAINING_S):
            return  # superseded by an earlier finish, or the replica stopped
        nf = r.next_finish_s()
        if nf > now_s:  # the batch grew since this was scheduled, so the first finish moved later
            r.scheduled_s = nf
            heappush(self.clock.heap, (nf, next(self.clock.counter), COMPLETE, r))
            return
        self._record(r.pop_due(now_s, True), now_s)  # force: within float rounding the first finish is now
        self.views[r.pos] = r.view
        if self.host is not None and not r.batch:
            self._host_update(now_s)
        if r.state is DRAINING_S and r.batch == 0:
            self._stop(r, now_s)
            return
        if self.queue:
            self._drain_queue(now_s)
        nf = r.next_finish_s()
        r.scheduled_s = nf
        if nf < INF:
            heappush(self.clock.heap, (nf, next(self.clock.counter), COMPLETE, r))

    def _record(self, done: list[tuple[float, int, float, float, int]], now_s: float) -> None:
        res = self.results
        lat, ttft = res.m_lat.append, res.m_ttft.append
        tokens = 0
        for _, _, arrival_s, first_token_s, output in done:
            latency = now_s - arrival_s
            lat(latency)
            first = first_token_s - arrival_s
            ttft(first if first < latency else latency)
            tokens += output
        res.m_output_tokens += tokens

    def _on_event(self, now_s: float, kind: int, r: Any) -> None:
        if kind == TICK:
            self._tick(now_s)
            self.ticks += 1
            self.clock.push(self.ticks * self.pool.scaling.tick_s, TICK, None)
        elif kind == MINUTE:
            self._close_minute(now_s)
            self.clock.push(now_s + MINUTE_S, MINUTE, None)
            if self.progress is not None and now_s % 3600.0 == 0.0:
                self.progress(now_s / self.opt.duration_s)
        elif kind == READY and r.state is STARTING_S:
            r.set_state(READY_S, now_s)
            self.views[r.pos] = r.view
            if self.host is not None:  # loading is over
                self._host_update(now_s)
            self.cold_starts += 1
            self.cold_start_total_s += now_s - r.requested_s
            self._drain_queue(now_s)
        elif kind == STARTUP_FAILED and r.state is STARTING_S:
            self.startup_failures += 1
            self._stop(r, now_s, ReplicaState.FAILED)
            self._start_replica(now_s)
        elif kind == PREEMPT and r.state in (READY_S, STARTING_S):
            preempt(self, r, now_s)
        elif kind == DRAIN_TIMEOUT and r.state is DRAINING_S:
            reason = "spot preemption" if r.preempted else "drain timeout"
            for _ in r.abort_all():
                self.results.reject(reason)
            self.views[r.pos] = r.view
            self._stop(r, now_s)

    # -- controller and minutes ------------------------------------------------------------------------------

    def _tick(self, now_s: float) -> None:
        epoch = self.opt.start_epoch_s
        last = None if self.last_arrival_s is None else epoch + self.last_arrival_s
        signals = PoolSignals(
            self.pool.name,
            epoch + now_s,
            self.capacity,
            tuple(self.views),
            len(self.queue),
            self.arrivals,
            self.results.completed_total,
            last,
            self.cold_start_p90_s,
        )
        decision, self.cstate = self.controller.decide(signals, self.cstate, epoch + now_s)
        self._mark(decision, now_s)
        if decision.desired != self.capacity:
            self._reconcile(decision.desired, now_s)

    def _mark(self, d: ScaleDecision, now_s: float) -> None:
        marks = self.results.marks
        if (d.min_replicas, d.max_replicas) != self.bounds and len(marks) < 10_000:
            if self.bounds is not None:
                marks.append(
                    Mark(now_s, "bounds", f"min {d.min_replicas} max {d.max_replicas} ({d.bounds_source})")
                )
            self.bounds = (d.min_replicas, d.max_replicas)
        if d.desired != d.current and len(marks) < 10_000:
            why = "; ".join(o.reason for o in d.opinions if o.desired is not None) or "bounds"
            marks.append(Mark(now_s, d.direction, f"{d.current} -> {d.desired}: {why}"))

    def _close_minute(self, now_s: float) -> None:
        counts = {READY_S: 0, STARTING_S: 0, DRAINING_S: 0}
        for r in self.replicas.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        self.results.close_minute(
            arrivals=self.arrivals - self.arrivals_before_minute,
            starting=counts[STARTING_S],
            ready=counts[READY_S],
            draining=counts[DRAINING_S],
            capacity=self.capacity,
            queue=len(self.queue),
            cost_usd=self.cost_so_far(now_s),
        )
        self.arrivals_before_minute = self.arrivals
        if self.results.last_minute_mean_latency_s is not None:
            self.mean_latency_s += 0.5 * (self.results.last_minute_mean_latency_s - self.mean_latency_s)

    def intervals_at(self, now_s: float) -> list[tuple[float, float]]:
        return [*self.intervals, *((r.requested_s, now_s) for r in self.replicas.values())]

    def cost_so_far(self, now_s: float) -> float:
        return fleet_cost(self.intervals_at(now_s), self.price).cost_usd

    # -- main loop -------------------------------------------------------------------------------------------

    def _arrival_stream(self) -> Iterator[Arrivals]:
        rng = np.random.default_rng(self.opt.seed)
        return self.traffic.chunks(self.opt.start_epoch_s, self.opt.start_epoch_s + self.opt.duration_s, rng)

    def run(self) -> Simulation:
        """Process arrivals and events in time order until ``duration_s``; at equal times, events first."""
        end, heap = self.opt.duration_s, self.clock.heap
        self.clock.push(0.0, TICK, None)
        self.clock.push(MINUTE_S, MINUTE, None)
        on_complete, on_event, arrive = self._on_complete, self._on_event, self._arrive
        for times, prompts, outputs in self._arrival_stream():
            for i, t_arr in enumerate(times):
                while heap[0][0] <= t_arr:
                    now_s, _, kind, payload = heappop(heap)
                    if now_s >= end:
                        return self._finish(end)
                    if kind == COMPLETE:
                        on_complete(payload, now_s)
                    else:
                        on_event(now_s, kind, payload)
                if t_arr >= end:
                    return self._finish(end)
                arrive(t_arr, prompts[i], outputs[i])
        while heap[0][0] < end:
            now_s, _, kind, payload = heappop(heap)
            on_complete(payload, now_s) if kind == COMPLETE else on_event(now_s, kind, payload)
        return self._finish(end)

    def _finish(self, end: float) -> Simulation:
        self.clock.now_s = end
        if self.results.minutes * MINUTE_S < end:
            self._close_minute(end)
        self.results.finish()
        if self.progress is not None:
            self.progress(1.0)
        return self
