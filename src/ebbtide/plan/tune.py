"""``ebbtide plan tune``: the cheapest setting of a policy's capacity parameter at SLO attainment >= a floor.

Each tunable policy has one parameter that trades cost for SLO in one direction (a larger target or
capacity per replica means fewer replicas: cheaper, later, fuller): ``predictive.capacity_per_replica_rps``,
``target_tracking.target``, ``queue_depth.target``, ``concurrency.target_per_replica``,
``ongoing_requests.target_per_replica``. The search walks a sorted grid of candidates as a bracketing search
(two twin runs per round, one per core), keeping the largest value that met the floor and the smallest that
did not, so ``budget`` runs cover a grid of about 3^(budget/2) points. No optimiser library: with one
monotone parameter and runs that cost seconds each, a bracket spends the budget where the answer is (a
general optimiser such as optuna would spend most of a 10-run budget exploring). The SLO is noisy, not
strictly monotone, so the winner is the cheapest *evaluated* setting that met the floor; every trial is
reported.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ebbtide.config import PoolSpec
from ebbtide.core.policies.base import PolicySpec
from ebbtide.core.policies.concurrency import ConcurrencySpec
from ebbtide.core.policies.ongoing_requests import OngoingRequestsSpec
from ebbtide.core.policies.queue_depth import QueueDepthSpec
from ebbtide.core.policies.target_tracking import TargetTrackingSpec
from ebbtide.plan.baselines import predictive_spec, with_policies, with_predictive_lead
from ebbtide.plan.compare import scenario_oracle
from ebbtide.plan.runner import DAY_S, Scenario, Variant, cold_start_quantile_s, run_variants

__all__ = ["TUNABLE", "TuneError", "candidates", "tune"]

TUNABLE = {
    "predictive": "capacity_per_replica_rps",
    "target_tracking": "target",
    "queue_depth": "target",
    "concurrency": "target_per_replica",
    "ongoing_requests": "target_per_replica",
}


class TuneError(ValueError):
    """Bad tune input, phrased for the user."""


def candidates(kind: str, slo_rps: float, slots: int) -> list[float]:
    """Sorted candidate values; the capacity-like ones are spread around the throughput at the SLO."""
    span = np.linspace(0.5, 1.3, 17)
    if kind == "predictive":
        return sorted({round(float(slo_rps * f), 2) for f in span})
    if kind == "target_tracking":
        return sorted({float(round(60 * slo_rps * f)) for f in span})
    if kind == "queue_depth":
        return [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 16.0, 23.0, 32.0, 45.0, 64.0]
    return sorted({float(v) for v in np.unique(np.linspace(1, max(slots, 2), 16).round())})


def _base_spec(scn: Scenario, kind: str, slo_rps: float, lead_s: float) -> tuple[PoolSpec, int | None]:
    """The pool whose policy is tuned and the index of that policy (None: the pool gets only that policy)."""
    pool = with_predictive_lead(scn.pool, lead_s)
    for i, p in enumerate(pool.scaling.policies):
        if getattr(p, "kind", None) == kind:
            return pool, i
    fresh: dict[str, PolicySpec] = {
        "predictive": predictive_spec(slo_rps, lead_s, scn.tz),
        "target_tracking": TargetTrackingSpec.model_validate({"target": 600}),
        "queue_depth": QueueDepthSpec.model_validate({"target": 30}),
        "concurrency": ConcurrencySpec.model_validate({"target_per_replica": pool.engine.slots}),
        "ongoing_requests": OngoingRequestsSpec.model_validate({}),
    }
    return with_policies(pool, [fresh[kind]]), 0


def _variant(pool: PoolSpec, index: int, param: str, value: float) -> Variant:
    policies = list(pool.scaling.policies)
    spec = policies[index]
    policies[index] = type(spec).model_validate({**spec.model_dump(), param: value})
    return Variant(f"{param}={value:g}", with_policies(pool, policies))


def _next_probes(lo: int, hi: int, width: int) -> list[int]:
    """Up to ``width`` distinct indices strictly inside (lo, hi), evenly spaced."""
    inside = range(lo + 1, hi)
    if len(inside) <= width:
        return list(inside)
    return sorted({lo + round((hi - lo) * (k + 1) / (width + 1)) for k in range(width)})


def tune(
    scn: Scenario, kind: str, *, min_slo: float = 0.99, budget: int = 10, workers: int = 2
) -> dict[str, Any]:
    if kind not in TUNABLE:
        raise TuneError(f"--policy = {kind!r}: must be one of {', '.join(TUNABLE)}")
    began = time.perf_counter()
    param = TUNABLE[kind]
    slo_rps = scenario_oracle(scn).throughput.rps
    pool, index = _base_spec(scn, kind, slo_rps, cold_start_quantile_s(scn.cold, 0.9))
    assert index is not None
    grid = candidates(kind, slo_rps, pool.engine.slots)
    days = scn.options.duration_s / DAY_S
    trials: list[dict[str, Any]] = []
    lo, hi, width = -1, len(grid), max(1, workers)
    while len(trials) < budget and hi - lo > 1:
        probes = _next_probes(lo, hi, min(width, budget - len(trials)))
        runs = run_variants(scn, [_variant(pool, index, param, grid[i]) for i in probes], workers)
        for i, run in zip(probes, runs, strict=True):
            slo = run["slo_attainment"]
            meets = slo is not None and slo >= min_slo
            trials.append(
                {
                    "value": grid[i],
                    "cost_usd": run["cost_usd"],
                    "cost_per_day_usd": round(run["cost_usd"] / days, 2),
                    "slo_attainment": slo,
                    "meets": meets,
                    "policies": run["policies"],
                }
            )
            if meets:
                lo = max(lo, i)
            else:
                hi = min(hi, i)
        if lo >= hi:  # not monotone here: stop rather than chase noise
            break
    passing = [t for t in trials if t["meets"]]
    best = min(passing, key=lambda t: (t["cost_usd"], -t["value"])) if passing else None
    return {
        "policy": kind,
        "parameter": param,
        "min_slo": min_slo,
        "grid": grid,
        "trials": sorted(trials, key=lambda t: t["value"]),
        "best": best,
        "wall_s": round(time.perf_counter() - began, 2),
    }
