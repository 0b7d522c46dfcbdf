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

Out of sample: the search runs on a training window (``train_days``, after the warm-up) and the winner is then
run, with the untuned setting beside it, on the test window that follows (``test_days``), which no trial saw.
Both figures are reported; the test one is what to expect on days to come.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from ebbtide.config import PoolSpec
from ebbtide.core.policies.base import PolicySpec
from ebbtide.core.policies.concurrency import ConcurrencySpec
from ebbtide.core.policies.ongoing_requests import OngoingRequestsSpec
from ebbtide.core.policies.queue_depth import QueueDepthSpec
from ebbtide.core.policies.target_tracking import TargetTrackingSpec
from ebbtide.plan.baselines import predictive_spec, with_policies, with_predictive_lead
from ebbtide.plan.compare import measured_oracle
from ebbtide.plan.oracle import SloThroughput
from ebbtide.plan.runner import DAY_S, Scenario, Variant, cold_start_quantile_s, run_variants

__all__ = ["TUNABLE", "TuneError", "candidates", "split_train_test", "tune"]

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


def _base_spec(scn: Scenario, kind: str, thr: SloThroughput, lead_s: float) -> tuple[PoolSpec, int]:
    """The pool whose policy is tuned and the index of that policy (the pool's own, else a fresh one alone)."""
    pool = with_predictive_lead(scn.pool, lead_s, float(thr.batch))
    for i, p in enumerate(pool.scaling.policies):
        if getattr(p, "kind", None) == kind:
            return pool, i
    fresh: dict[str, PolicySpec] = {
        "predictive": predictive_spec(thr.rps, lead_s, scn.tz, float(thr.batch)),
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


def _search(
    scn: Scenario, pool: PoolSpec, index: int, param: str, grid: list[float], min_slo: float, budget: int, workers: int
) -> list[dict[str, Any]]:
    """The bracketing search on ``scn``'s measured days: every evaluated setting, in evaluation order."""
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
    return trials


def split_train_test(scn: Scenario, train_days: float, test_days: float) -> tuple[Scenario, Scenario | None]:
    """The training window (the scenario's first ``train_days``) and the test window right after it, whose
    learning policies have also learned the training days (they happened before it)."""
    opt = scn.options
    train = replace(scn, options=replace(opt, duration_s=train_days * DAY_S))
    if test_days <= 0:
        return train, None
    test = replace(
        scn,
        options=replace(opt, start_epoch_s=opt.start_epoch_s + train_days * DAY_S, duration_s=test_days * DAY_S),
        warmup_days=scn.warmup_days + train_days,
    )
    return train, test


def _test_json(scn: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    mo = measured_oracle(scn)
    days = scn.options.duration_s / DAY_S
    oracle_cost = mo.oracle.cost_usd

    def row(run: dict[str, Any]) -> dict[str, Any]:
        return {
            "cost_usd": run["cost_usd"],
            "cost_per_day_usd": round(run["cost_usd"] / days, 2),
            "slo_attainment": run["slo_attainment"],
            "ratio_to_oracle": round(run["cost_usd"] / oracle_cost, 4) if oracle_cost > 0 else None,
        }

    return {
        "window": mo.window,
        "days": days,
        "oracle_cost_per_day_usd": round(oracle_cost / days, 2),
        "best": row(runs[0]),
        "untuned": row(runs[1]) if len(runs) > 1 else None,
    }


def tune(
    scn: Scenario,
    kind: str,
    *,
    min_slo: float = 0.99,
    budget: int = 10,
    workers: int = 2,
    train_days: float | None = None,
    test_days: float = 0.0,
) -> dict[str, Any]:
    """Search on the first ``train_days`` of ``scn`` (default: all of it), then, with ``test_days``, run the
    winner and the untuned setting on the days after them, which the search never saw."""
    if kind not in TUNABLE:
        raise TuneError(f"--policy = {kind!r}: must be one of {', '.join(TUNABLE)}")
    began = time.perf_counter()
    total_days = scn.options.duration_s / DAY_S
    train_days = total_days - test_days if train_days is None else train_days
    if train_days <= 0 or test_days < 0 or train_days + test_days > total_days + 1e-9:
        raise TuneError(f"--train-days {train_days:g} + --test-days {test_days:g}: must fit in {total_days:g} days")
    train, test = split_train_test(scn, train_days, test_days)
    param = TUNABLE[kind]
    mo = measured_oracle(train)
    slo_rps = mo.policy_rps
    pool, index = _base_spec(scn, kind, mo.policy_throughput, cold_start_quantile_s(scn.cold, 0.9))
    grid = candidates(kind, slo_rps, pool.engine.slots)
    trials = _search(train, pool, index, param, grid, min_slo, budget, workers)
    passing = [t for t in trials if t["meets"]]
    best = min(passing, key=lambda t: (t["cost_usd"], -t["value"])) if passing else None
    result: dict[str, Any] = {
        "policy": kind,
        "parameter": param,
        "min_slo": min_slo,
        "grid": grid,
        "train": {"window": mo.window, "days": train_days},
        "trials": sorted(trials, key=lambda t: t["value"]),
        "best": best,
        "test": None,
    }
    if test is not None and best is not None:
        untuned = pool.scaling.policies[index]
        tuned = _variant(pool, index, param, best["value"])
        runs = run_variants(test, [tuned, Variant("untuned", pool)], workers)
        result["test"] = {**_test_json(test, runs), "untuned_value": getattr(untuned, param)}
    result["wall_s"] = round(time.perf_counter() - began, 2)
    return result
