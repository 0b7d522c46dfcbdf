"""Run one pool variant in the twin on a shared scenario, with warm-up history for learning policies, and run
several variants on both cores with results in input order.

Warm-up: the ``warmup_days`` before the measured start are *replayed to the learning policies*
(``predictive``) as the arrivals counter they would have seen tick by tick; the fleet is not simulated then.
Arrivals do not depend on the fleet, so a learning policy ends the warm-up in exactly the state a full
simulation of those days would leave it in (tests/sim/test_compare.py checks it), at a fraction of the cost.
The policy never sees the measured days in advance: a profile's warm-up arrivals come from their own seed, and
a trace is anchored so that its first ``warmup_days`` are the history and the measured days follow them
(``sim/scenario.py``; tests/sim/test_trace_history.py pins that no arrival is both learned and measured).

Usage::

    scn = load_scenario(Path("examples/seed-sagemaker.yaml"), traffic="business-hours", days=1, warmup_days=7)
    [summary] = run_variants(scn, [Variant("yours", scn.pool)])
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ebbtide.config import Config, PoolSpec, build_controller
from ebbtide.core.controller import Controller, ControllerState
from ebbtide.core.policies.predictive import PredictivePolicy
from ebbtide.sim.coldstart import ColdStartModel
from ebbtide.sim.output import summary
from ebbtide.sim.run import RunOptions, Simulation
from ebbtide.sim.scenario import ScenarioInput, build_simulation
from ebbtide.sim.service import ServiceModel
from ebbtide.sim.traffic import Traffic

__all__ = [
    "DAY_S",
    "Scenario",
    "Variant",
    "cold_start_quantile_s",
    "load_scenario",
    "per_day",
    "run_jobs",
    "run_variant",
    "run_variants",
    "scenario_from",
    "warm_state",
    "warmup_arrivals",
]

DAY_S = 86_400.0
WARMUP_SEED_OFFSET = 7_919  # warm-up days draw from their own stream, never the measured days'


@dataclass(frozen=True)
class Scenario:
    """Everything variants share: config, the user's pool, traffic, dates, seed, models of service and cold
    start."""

    cfg: Config
    pool: PoolSpec
    traffic: Traffic
    options: RunOptions
    tz: str
    warmup_days: float
    service: ServiceModel
    cold: ColdStartModel
    config_path: Path | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    pool: PoolSpec


def load_scenario(
    config_path: Path | None,
    *,
    traffic: str | None = None,
    trace: Path | None = None,
    days: float = 1.0,
    warmup_days: float = 7.0,
    seed: int = 0,
    start: str | None = None,
    pool: str | None = None,
) -> Scenario:
    """Resolve the user's inputs once (errors name the flag or field, as ``ebbtide simulate``'s do)."""
    inp = ScenarioInput(
        config_path=config_path,
        pool=pool,
        traffic=traffic,
        trace=trace,
        start=start,
        days=days,
        seed=seed,
        warmup_days=warmup_days,
    )
    return scenario_from(inp)


def scenario_from(inp: ScenarioInput) -> Scenario:
    """A scenario from the shared traffic inputs (``sim/options.py``), warm-up included."""
    sim, tz = build_simulation(inp)
    return Scenario(
        sim.cfg, sim.pool, sim.traffic, sim.opt, tz, inp.warmup_days, sim.service, sim.cold, inp.config_path
    )


def cold_start_quantile_s(cold: ColdStartModel, q: float = 0.9) -> float:
    """The ``q`` quantile of the twin's cold-start model (failures excluded)."""
    return cold.quantile_s(q)


def _warmup_offsets(scn: Scenario) -> np.ndarray:
    """Warm-up arrivals, seconds after the warm-up's start."""
    span = scn.warmup_days * DAY_S
    start = scn.options.start_epoch_s - span
    rng = np.random.default_rng(scn.options.seed + WARMUP_SEED_OFFSET)
    chunks = [np.asarray(times) for times, _, _ in scn.traffic.chunks(start, start + span, rng)]
    times = np.concatenate(chunks) if chunks else np.empty(0)
    return times[times < span]


def warmup_arrivals(scn: Scenario) -> np.ndarray:
    """Arrival epochs of the warm-up days, exactly as the learning policies are taught them."""
    return scn.options.start_epoch_s - scn.warmup_days * DAY_S + _warmup_offsets(scn)


def warm_state(controller: Controller, scn: Scenario, tick_s: float) -> ControllerState:
    """The controller's initial state with its learning policies taught the warm-up days' arrivals."""
    state = controller.initial_state()
    learners = [i for i, p in enumerate(controller.policies) if isinstance(p, PredictivePolicy)]
    if not learners or scn.warmup_days <= 0:
        return state
    span = scn.warmup_days * DAY_S
    start = scn.options.start_epoch_s - span
    times = _warmup_offsets(scn)
    ticks = np.arange(0.0, span, tick_s)
    # Same convention as the twin: a tick sees the arrivals strictly before it (events first at equal times).
    counts = np.searchsorted(times, ticks, side="left").tolist()
    epochs = (start + ticks).tolist()
    states = list(state.policy_states)
    for i in learners:
        policy = controller.policies[i]
        assert isinstance(policy, PredictivePolicy)
        s = states[i]
        for now_s, n in zip(epochs, counts, strict=True):
            s = policy.observe(n, s, now_s)
        states[i] = s
    return replace(state, policy_states=tuple(states))


def run_variant(scn: Scenario, variant: Variant) -> dict[str, Any]:
    """One measured run: ``sim.output.summary`` plus the name, the policies and the per-minute capacity."""
    began = time.perf_counter()
    controller = build_controller(variant.pool)
    sim = Simulation(scn.cfg, variant.pool, scn.traffic, scn.options, controller=controller)
    sim.cstate = warm_state(controller, scn, variant.pool.scaling.tick_s)
    sim.run()
    out = summary(sim, time.perf_counter() - began)
    out["name"] = variant.name
    out["policies"] = [
        {"kind": getattr(p, "kind", None), **p.model_dump(mode="json", exclude_defaults=True)}
        for p in variant.pool.scaling.policies
    ]
    out["bounds"] = [variant.pool.scaling.min_replicas, variant.pool.scaling.max_replicas]
    out["capacity_by_minute"] = [int(c) for c in sim.results.timeline["capacity"]]
    out["per_day"] = per_day(sim)
    return out


def per_day(sim: Simulation) -> list[dict[str, Any]]:
    """Cost and SLO attainment of each measured day (the last may be partial), from the minute timeline and
    the SLO windows' outcomes."""
    cost = sim.results.timeline["cost_usd"]
    outcomes = np.frombuffer(sim.results.window_outcomes, dtype=np.int8)
    per_window = max(1, round(sim.cfg.slo.window_s / 60.0))
    rows: list[dict[str, Any]] = []
    for d in range(math.ceil(sim.opt.duration_s / DAY_S - 1e-9)):
        first, last = d * 1440, min((d + 1) * 1440, len(cost)) - 1
        windows = outcomes[d * 1440 // per_window : (d + 1) * 1440 // per_window]
        counted = int((windows >= 0).sum())
        rows.append(
            {
                "day": d,
                "cost_usd": round(cost[last] - (cost[first - 1] if first else 0.0), 2),
                "slo_windows": counted,
                "slo_attainment": round(int((windows == 1).sum()) / counted, 4) if counted else None,
            }
        )
    return rows


def _run_job(job: tuple[Scenario, Variant]) -> dict[str, Any]:
    return run_variant(*job)


def run_jobs(jobs: list[tuple[Scenario, Variant]], workers: int = 2) -> list[dict[str, Any]]:
    """Runs on ``workers`` processes, results in input order; every run is seeded, so results do not depend
    on the worker count."""
    if workers <= 1 or len(jobs) <= 1:
        return [run_variant(*job) for job in jobs]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        return list(pool.map(_run_job, jobs))


def run_variants(scn: Scenario, variants: list[Variant], workers: int = 2) -> list[dict[str, Any]]:
    return run_jobs([(scn, v) for v in variants], workers)
