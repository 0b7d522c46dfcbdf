"""One pool in the twin: its replicas, queue, controller and bill, carried out on the run's event clock.

Everything that decides lives in ``core/`` and is the code ``serve`` runs: the controller
(``config.build_controller``), the fleet plan (``core.fleet.plan_fleet`` / ``preempt``: what to start, what to
drain, in which order), admission (``core.queueing.admit``: 429/503 and Retry-After, shedding; the wait
estimate from the EWMA of slot time), the fair queue (``core.fairqueue``), routing
(``core.routing.least_outstanding``) and the bill (``core.cost.CostLedger`` at each replica's own price). This
module only turns those verdicts into events: requests are placed, finish or wait, and a queued request expires
at its deadline (503); the fleet's events (ready, failed, drained, standby parked and woken) are ``sim/fleet.py``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ebbtide.config import PoolSpec, build_controller, default_threads_per_replica
from ebbtide.config.sim import SimSpec
from ebbtide.core.controller import Controller
from ebbtide.core.cost import CostLedger, Price
from ebbtide.core.fairqueue import FairQueue, Queued
from ebbtide.core.fleet import CANDIDATE, DEFAULT_VARIANT, FleetAction, FleetTarget, Start, plan_fleet
from ebbtide.core.queueing import QUEUE_TIMEOUT_STATUS, SERVICE_EWMA_WEIGHT, Backlog, admit, ready_eta_s
from ebbtide.core.routing import least_outstanding
from ebbtide.core.signals import PoolSignals, ReplicaState
from ebbtide.core.standby import StandbyWish
from ebbtide.sim.fleet import DRAINING_S, PARKED_S, READY_S, STARTING_S, SimFleet
from ebbtide.sim.host import SharedHost
from ebbtide.sim.replica import Running, SimReplica
from ebbtide.sim.service import ServiceModel
from ebbtide.sim.shapes import pool_shapes

if TYPE_CHECKING:
    from ebbtide.sim.run import Simulation

__all__ = ["SimPool", "Waiting"]

INF = float("inf")
# A queued request: (arrival_s, prompt_tokens, output_tokens, class index, rollout arm or None).
Waiting = tuple[float, int, int, int, str | None]
SHADOW_CLASS = "shadow"


class SimPool(SimFleet):
    def __init__(
        self,
        run: Simulation,
        spec: PoolSpec,
        rng: random.Random,
        controller: Controller | None = None,
        service: ServiceModel | None = None,
    ) -> None:
        self.run, self.spec, self.clock, self.rng = run, spec, run.clock, rng
        self.push = run.clock.push
        cfg = run.cfg
        sim = spec.sim or SimSpec.model_validate({})
        self.shapes = pool_shapes(spec, run.opt.base_dir, service)
        self.service, self.cold = self.shapes[DEFAULT_VARIANT].service, self.shapes[DEFAULT_VARIANT].cold
        self.controller = controller or build_controller(spec)
        self.cstate = self.controller.initial_state()
        self.host = None if sim.host is None else SharedHost(
            sim.host, getattr(spec.engine, "threads", None)
            or default_threads_per_replica(spec.scaling.max_replicas, int(sim.host.cores)))
        self.replicas: dict[str, SimReplica] = {}
        self.views: list[Any] = []
        self.queue: FairQueue[Waiting] = FairQueue(cfg.gateway.priority_classes)
        self.classes = run.class_names
        self.max_queue_allowed, self.deadline_s = cfg.gateway.max_queue, cfg.gateway.default_deadline_s
        self.ledger = CostLedger()
        self.prices: dict[tuple[str, bool], Price] = {}
        self.spot = spec.replica.spot
        self.standby = spec.scaling.standby.wish()  # the configured reserve; a policy's wish replaces it
        self.target = FleetTarget(0, spot=self.spot is not None, min_on_demand=self.spot.min_on_demand
                                  if self.spot else 0, standby=self.standby)
        self.planned: tuple[int, FleetTarget] | None = None
        self.version = 0  # bumped on every replica state change: the fleet plan is redone only when needed
        self.service_s: float | None = None
        self.service_prior_s = cfg.slo.latency_p95_s / 2
        self.cold_start_p90_s = self.cold.quantile_s(0.9)
        self.preempt_rate_per_s = sim.spot_preemptions_per_hour / 3600.0 if self.spot else 0.0
        self.capacity = self.max_capacity = self.next_id = self.seq = self.ticks = 0
        self.arrivals = self.cold_starts = self.startup_failures = self.preemptions = self.max_queue = 0
        self.completions = self.promotions = self.late = 0
        self.late_after_s = cfg.slo.latency_p95_s
        self.cold_start_total_s = 0.0
        self.last_arrival_s: float | None = None
        self.actions: list[tuple[float, FleetAction]] = []  # the ordered fleet actions (differential test)
        self.rollout: Any = None  # sim.rollout.SimRollout when the pool has a rollout
        n0 = sim.initial_replicas if sim.initial_replicas is not None else spec.scaling.min_replicas
        self.target = replace(self.target, desired=n0)
        parked = self.standby if sim.initial_standby is None else StandbyWish(self.standby.tier, sim.initial_standby)
        for action in plan_fleet([], replace(self.target, standby=parked), 0.0):
            assert isinstance(action, Start)
            self.actions.append((0.0, action))
            self._start_replica(0.0, action, warm=True)  # a reserve wished for at t=0 is parked from t=0

    # -- requests --------------------------------------------------------------------------------------------

    def free_replica(self) -> str | None:
        return None if self.queue.size else least_outstanding(self.views)

    def _pick(self, arm: str | None) -> str | None:
        """A free replica for a rollout arm: ``candidate`` only, ``baseline`` = any but the candidate."""
        if arm is None:
            return least_outstanding(self.views)
        want = arm == CANDIDATE
        return least_outstanding([v for v in self.views if (v.variant == CANDIDATE) is want])

    def backlog(self, now_s: float) -> Backlog:
        ready = [r for r in self.replicas.values() if r.state is READY_S]
        starting = [r.requested_s for r in self.replicas.values() if r.state is STARTING_S and r.standby is None]
        service = self.service_s if self.service_s is not None else self.service_prior_s
        eta = ready_eta_s(starting, self.cold_start_p90_s, now_s)
        return Backlog(self.queue.size, len(ready), sum(r.slots for r in ready), service, eta)

    def can_grow(self) -> bool:
        return self.target.desired < self.controller.rules.max_replicas or any(
            r.state is STARTING_S and r.standby is None for r in self.replicas.values())

    def arrive(self, now_s: float, prompt: int, output: int, cls: int, arm: str | None = None) -> None:
        """A request (``cls`` < 0: a rollout's shadow copy, which is not the client's) reaches this pool."""
        if cls >= 0:
            self.arrivals += 1
            self.last_arrival_s = now_s
        queue = self.queue
        if not queue.size:
            rid = least_outstanding(self.views) if arm is None else self._pick(arm)
            if rid is not None:  # the common case: nobody waiting and a free slot
                self._place(self.replicas[rid], now_s, now_s, prompt, output, cls)
                return
        name = self.classes[cls] if cls >= 0 else SHADOW_CLASS
        full = queue.size >= self.max_queue_allowed
        victim = queue.shed_candidate(name) if full else None
        verdict = admit(self.backlog(now_s), self.max_queue_allowed, self.deadline_s, victim is not None)
        if not verdict.accepted:
            why = "queue full" if "queue full" in verdict.reason else (
                "no ready replica" if "no ready" in verdict.reason else "wait > deadline")
            self.run.reject(f"{verdict.status} {why}", cls, now_s, verdict.status)
            return
        if verdict.shed and victim is not None:
            queue.discard(victim)
            self.run.reject("429 shed for a higher class", victim.payload[3], victim.payload[0], 429)
        item = queue.push((now_s, prompt, output, cls, arm), name, name)
        self.clock.push(now_s + self.deadline_s, self.expire, item)
        if queue.size > self.max_queue:
            self.max_queue = queue.size

    def expire(self, now_s: float, item: Queued[Waiting]) -> None:
        if item.live:
            self.queue.discard(item)
            self.run.reject(f"{QUEUE_TIMEOUT_STATUS} deadline", item.payload[3], item.payload[0], QUEUE_TIMEOUT_STATUS)

    def _place(self, r: SimReplica, now_s: float, arrival_s: float, prompt: int, output: int, cls: int) -> None:
        self.seq += 1
        if self.host is not None and not r.batch:
            self._host_update(now_s, r)
        r.start_request(now_s, self.seq, arrival_s, prompt, output, cls)
        self.views[r.pos] = r.view
        nf = r.next_finish_s()
        if nf < r.scheduled_s:
            r.scheduled_s = nf
            self.push(nf, self.on_complete, r)

    def _drain_queue(self, now_s: float) -> None:
        """Serve waiters in fair order; a head whose arm has no free replica lets the first waiter that can go
        go first (as the live broker does)."""
        queue = self.queue
        while queue.size:
            head = queue.peek()
            assert head is not None
            rid = self._pick(head.payload[4])
            if rid is None:
                if head.payload[4] is None:
                    return
                head = next((w for w in queue.in_order() if self._pick(w.payload[4]) is not None), None)
                if head is None:
                    return
                rid = self._pick(head.payload[4])
                assert rid is not None
            queue.take(head)
            arrival_s, prompt, output, cls, _ = head.payload
            self._place(self.replicas[rid], now_s, arrival_s, prompt, output, cls)

    def on_complete(self, now_s: float, r: SimReplica) -> None:
        if now_s != r.scheduled_s or (r.state is not READY_S and r.state is not DRAINING_S):
            return  # superseded by an earlier finish, or the replica stopped
        nf = r.next_finish_s()
        if nf > now_s:  # the batch grew since this was scheduled, so the first finish moved later
            r.scheduled_s = nf
            self.push(nf, self.on_complete, r)
            return
        done = r.pop_due(now_s, True)  # force: within float rounding the first finish is now
        self._record(done, now_s)
        if self.rollout is not None:
            self.rollout.observe(r.variant, done, now_s)
        self.views[r.pos] = r.view
        if self.host is not None and not r.batch:
            self._host_update(now_s)
        if r.state is DRAINING_S and r.batch == 0:
            self._stop(r, now_s)
            return
        if self.queue.size:
            self._drain_queue(now_s)
        nf = r.next_finish_s()
        r.scheduled_s = nf
        if nf < INF:
            self.push(nf, self.on_complete, r)

    def _record(self, done: list[Running], now_s: float) -> None:
        """Latency and TTFT of finished requests (overall and per class), and the EWMA of slot time."""
        run = self.run
        res, by_class = run.results, run.class_results
        lat, ttft = res.m_lat.append, res.m_ttft.append
        service = self.service_s
        outcomes = run.outcomes
        late_after_s, late = self.late_after_s, 0
        tokens = 0
        for _, _, arrival_s, first_token_s, output, started_s, cls in done:
            if cls < 0:
                continue  # a shadow copy: the candidate's load, not a client's answer
            latency = now_s - arrival_s
            first = first_token_s - arrival_s
            if first > latency:
                first = latency
            lat(latency)
            ttft(first)
            if latency > late_after_s:
                late += 1
            tokens += output
            if outcomes is not None:
                outcomes.append((arrival_s, 200))
            held = now_s - started_s
            service = held if service is None else service + SERVICE_EWMA_WEIGHT * (held - service)
            if by_class is not None:
                c = by_class[cls]
                c.m_lat.append(latency)
                c.m_ttft.append(first)
                c.m_output_tokens += output
        res.m_output_tokens += tokens
        self.service_s = service
        self.late += late
        self.completions += len(done) if self.rollout is None else sum(1 for d in done if d[6] >= 0)

    # -- events ----------------------------------------------------------------------------------------------

    def on_tick(self, now_s: float, _: Any = None) -> None:
        self.tick(now_s)
        self.ticks += 1
        self.clock.push(self.ticks * self.spec.scaling.tick_s, self.on_tick, None)

    def tick(self, now_s: float) -> None:
        epoch = self.run.opt.start_epoch_s
        last = None if self.last_arrival_s is None else epoch + self.last_arrival_s
        signals = PoolSignals(self.spec.name, epoch + now_s, self.target.desired, tuple(self.views),
                              len(self.queue), self.arrivals, self.completions, last, self.cold_start_p90_s,
                              self.late)
        decision, self.cstate = self.controller.decide(signals, self.cstate, epoch + now_s)
        if self is self.run.primary:
            self.run.mark(decision, now_s)
        if self.rollout is not None:  # as serve: the rollout's step first, then the controller's count
            self.rollout.tick(now_s)
        variant = decision.variant if decision.variant is not None else self.target.variant
        if variant not in self.shapes:
            variant = self.target.variant
        standby = decision.standby if decision.standby is not None else self.standby
        if (decision.desired, variant, standby) != (self.target.desired, self.target.variant, self.target.standby):
            self.retarget(now_s, desired=decision.desired, variant=variant, standby=standby)
        else:
            self._reconcile(now_s)

    def retarget(self, now_s: float, **changes: Any) -> None:
        """A rollout moved the pool (candidates, variant, hold_old): plan again now."""
        self.target = replace(self.target, **changes)
        self._reconcile(now_s)

    # -- reports ---------------------------------------------------------------------------------------------

    def counts(self) -> dict[ReplicaState, int]:
        counts = {READY_S: 0, STARTING_S: 0, DRAINING_S: 0, PARKED_S: 0}
        for r in self.replicas.values():
            state = PARKED_S if r.standby is not None else r.state  # the reserve, loading or parked
            counts[state] = counts.get(state, 0) + 1
        return counts

    def running(self) -> int:
        return sum(r.batch for r in self.replicas.values())
