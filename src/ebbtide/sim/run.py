"""Drive the real ``core/`` over modelled time: arrivals, completions, controller ticks, replica lifecycle.

One event clock for the whole run; each pool (``sim/pool.py``: the traffic's pool and its fallback, if it has
one) has its own replicas, queue, controller ticking at its own ``scaling.tick_s``, and bill. An arrival takes a
priority class from the pool's ``sim.classes`` mix, overflows to the fallback pool when
``core.queueing.should_overflow`` says the primary would miss the SLO (for the classes in
``fallback_classes``), and is then admitted by that pool exactly as ``serve`` admits it. Latency and SLO are
per request (whichever pool served it), overall and per class; cost is per pool.

Usage: ``summary = Simulation(cfg, pool, traffic, RunOptions(start_epoch_s, 86400, seed=1)).run()``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ebbtide.config import Config, PoolSpec
from ebbtide.config.sim import SimSpec
from ebbtide.core.controller import Controller, ScaleDecision
from ebbtide.core.queueing import should_overflow
from ebbtide.core.signals import ReplicaState
from ebbtide.sim.clock import EventClock
from ebbtide.sim.coldstart import ColdStartModel
from ebbtide.sim.pool import SimPool
from ebbtide.sim.results import Mark, Results
from ebbtide.sim.rollout import SimRollout
from ebbtide.sim.service import ServiceModel
from ebbtide.sim.traffic import Arrivals, Traffic

__all__ = ["RunOptions", "Simulation"]

MINUTE_S = 60.0
DEFAULT_CLASS = "interactive"


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
        mix = {name: share for name, share in sim.classes.items() if share > 0} or {DEFAULT_CLASS: 1.0}
        self.class_names = list(mix)
        total = sum(mix.values())
        self.class_cdf = np.cumsum([share / total for share in mix.values()])
        self.clock = EventClock(0.0)
        seed = options.seed
        self.rng = random.Random(seed * 1_000_003 + 17)
        self.spread_rng = random.Random(seed * 1_000_003 + 29)
        slo = cfg.slo

        def results() -> Results:
            return Results(slo_latency_s=slo.latency_p95_s, slo_ttft_s=slo.ttft_p95_s, window_s=slo.window_s)

        self.results = results()
        self.class_results = [results() for _ in self.class_names] if len(self.class_names) > 1 else None
        self.primary = SimPool(self, pool, self.rng, controller, service)
        self.fallback = None if pool.fallback is None else SimPool(
            self, cfg.pool(pool.fallback), random.Random(seed * 1_000_003 + 41))
        self.pools = [self.primary] if self.fallback is None else [self.primary, self.fallback]
        for p in self.pools:
            if p.spec.rollout is not None:
                p.rollout = SimRollout(p, random.Random(seed * 1_000_003 + 53))
        self.overflow_classes = frozenset(pool.fallback_classes)
        self.fallbacks = self.arrivals_before_minute = 0
        # (arrival_s, status) of every request once answered, when asked for (the differential test)
        self.outcomes: list[tuple[float, int]] | None = None
        self.bounds: tuple[int, int] | None = None

    # The primary pool's model, for callers that configure one pool (the planner, the demo).
    @property
    def service(self) -> ServiceModel:
        return self.primary.service

    @property
    def cold(self) -> ColdStartModel:
        return self.primary.cold

    @property
    def controller(self) -> Controller:
        return self.primary.controller

    @property
    def cstate(self) -> Any:
        return self.primary.cstate

    @cstate.setter
    def cstate(self, state: Any) -> None:
        self.primary.cstate = state

    # -- requests --------------------------------------------------------------------------------------------

    @property
    def arrivals(self) -> int:
        return sum(p.arrivals for p in self.pools)

    def _arrive(self, now_s: float, prompt: int, output: int, cls: int) -> None:
        target = self.primary
        fallback = self.fallback
        if fallback is not None and self.class_names[cls] in self.overflow_classes and target.free_replica() is None:
            backlog = target.backlog(now_s)
            if should_overflow(backlog, False, self.cfg.slo.latency_p95_s, target.can_grow()):
                target = fallback
                self.fallbacks += 1
        if target.rollout is not None:
            target.rollout.arrive(now_s, prompt, output, cls)
        else:
            target.arrive(now_s, prompt, output, cls)

    def reject(self, reason: str, cls: int, arrival_s: float, status: int) -> None:
        if cls < 0:
            return  # a rollout's shadow copy: nobody's request
        if self.outcomes is not None:
            self.outcomes.append((arrival_s, status))
        self.results.reject(reason)
        if self.class_results is not None:
            self.class_results[cls].reject(reason)

    def mark(self, d: ScaleDecision, now_s: float) -> None:
        """Decisions and bound changes of the traffic's pool, for the plots."""
        marks = self.results.marks
        if (d.min_replicas, d.max_replicas) != self.bounds and len(marks) < 10_000:
            if self.bounds is not None:
                marks.append(Mark(now_s, "bounds", f"min {d.min_replicas} max {d.max_replicas} ({d.bounds_source})"))
            self.bounds = (d.min_replicas, d.max_replicas)
        if d.desired != d.current and len(marks) < 10_000:
            why = "; ".join(o.reason for o in d.opinions if o.desired is not None) or "bounds"
            marks.append(Mark(now_s, d.direction, f"{d.current} -> {d.desired}: {why}"))

    # -- minutes ---------------------------------------------------------------------------------------------

    def _close_minute(self, now_s: float) -> None:
        p = self.primary
        counts = p.counts()
        self.results.close_minute(
            arrivals=(arrivals := self.arrivals) - self.arrivals_before_minute, starting=counts[ReplicaState.STARTING],
            ready=counts[ReplicaState.READY], draining=counts[ReplicaState.DRAINING], capacity=p.capacity,
            queue=len(p.queue), cost_usd=self.cost_so_far(now_s),
        )
        if self.class_results is not None:
            for c in self.class_results:  # per-class windows: arrivals are not split, only activity matters
                c.close_minute(arrivals=0, starting=0, ready=0, draining=0, capacity=0, queue=0, cost_usd=0.0)
        self.arrivals_before_minute = arrivals

    def cost_so_far(self, now_s: float) -> float:
        return sum(p.ledger.total_usd(now_s) for p in self.pools)

    # -- main loop -------------------------------------------------------------------------------------------

    def _arrival_stream(self) -> Iterator[Arrivals]:
        rng = np.random.default_rng(self.opt.seed)
        return self.traffic.chunks(self.opt.start_epoch_s, self.opt.start_epoch_s + self.opt.duration_s, rng)

    def _classes(self, n: int) -> list[int]:
        if len(self.class_names) == 1:
            return [0] * n
        draws = self.class_rng.random(n)
        picked = np.searchsorted(self.class_cdf, draws, side="right").clip(0, len(self.class_names) - 1)
        return picked.tolist()  # type: ignore[no-any-return]

    def _on_minute(self, now_s: float, _: Any = None) -> None:
        self._close_minute(now_s)
        self.clock.push(now_s + MINUTE_S, self._on_minute, None)
        if self.progress is not None and now_s % 3600.0 == 0.0:
            self.progress(now_s / self.opt.duration_s)

    def run(self) -> Simulation:
        """Process arrivals and events in time order until ``duration_s``; at equal times, events first.
        Arrivals come in time order from the traffic and are merged here, between runs of the event clock."""
        end, clock = self.opt.duration_s, self.clock
        self.class_rng = np.random.default_rng(self.opt.seed + 7_919)
        for p in self.pools:
            clock.push(0.0, p.on_tick, None)
        clock.push(MINUTE_S, self._on_minute, None)
        simple = self.fallback is None and self.primary.rollout is None
        arrive = self.primary.arrive if simple else self._arrive
        for chunk in self._arrival_stream():
            times, prompts, outputs = chunk[0], chunk[1], chunk[2]
            # A scripted traffic may say each request's class index as a fourth list; others draw from the mix.
            scripted: Any = chunk
            classes = scripted[3] if len(scripted) > 3 else self._classes(len(times))
            arrivals = zip(times, prompts, outputs, classes, strict=True)
            if not clock.interleave(arrivals, arrive, end):
                break
        clock.run_until(end, inclusive=False)
        return self._finish(end)

    def _finish(self, end: float) -> Simulation:
        self.clock.now_s = end
        if self.results.minutes * MINUTE_S < end:
            self._close_minute(end)
        self.results.finish()
        if self.class_results is not None:
            for c in self.class_results:
                c.finish()
        if self.progress is not None:
            self.progress(1.0)
        return self
