"""``plan compare --seeds 0-9``: the comparison on several seeds, reported as a spread instead of one number.

Each seed is the single-seed comparison exactly (same oracle, same runs: ``--seeds 3`` equals ``--seed 3``). The
oracle is computed once per seed, and every (seed, policy) run goes to one pool of worker processes, so both
cores stay busy across seed boundaries. Per policy: mean and worst × oracle and SLO attainment over the seeds,
and its worst day (highest daily × oracle, lowest daily SLO attainment) among all seeds' days; the per-day
table has one row per seed, day and policy.

Usage: ``result = compare_seeds(load_scenario(path, days=7, warmup_days=7), [0, 1, 2])``.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ebbtide.plan.compare import MeasuredOracle, comparison_json, measured_oracle, variants_for
from ebbtide.plan.runner import DAY_S, Scenario, Variant, load_scenario, run_jobs

__all__ = ["PER_DAY_COLUMNS", "SeedRuns", "SeedsError", "compare_seeds", "parse_seeds", "seed_runs", "spread_of",
           "with_seed"]

PER_DAY_COLUMNS = ("seed", "day", "date", "policy", "cost_usd", "oracle_cost_usd", "ratio_to_oracle", "slo_attainment")
MAX_SEEDS = 1000


class SeedsError(ValueError):
    """A bad ``--seeds`` value, phrased for the user."""


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``1,4,7`` or a mix (``0-4,10``): distinct seeds in the order given."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise SeedsError(f"--seeds = {text!r}: use a range like 0-9, a list like 1,4,7, or both")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise SeedsError(f"--seeds = {text!r}: {lo}-{hi} is an empty range")
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
        if len(seeds) > MAX_SEEDS:
            raise SeedsError(f"--seeds = {text!r}: at most {MAX_SEEDS} seeds")
    return seeds


def with_seed(scn: Scenario, seed: int) -> Scenario:
    return replace(scn, options=replace(scn.options, seed=seed))


@dataclass(frozen=True, slots=True)
class SeedRuns:
    """One seed's scenario, its measured oracle and the comparison's variants by name (for scripts that build
    their own variants beside them, as ``examples/`` do)."""

    seed: int
    scenario: Scenario
    oracle: MeasuredOracle
    variants: dict[str, Variant]


def seed_runs(config: Path, seeds: list[int], **scenario: Any) -> list[SeedRuns]:
    """Load ``config`` once per seed (``scenario``: ``load_scenario``'s keywords) and measure its oracle."""
    out = []
    for seed in seeds:
        scn = load_scenario(config, seed=seed, **scenario)
        mo = measured_oracle(scn)
        out.append(SeedRuns(seed, scn, mo, {v.name: v for v in variants_for(scn, mo.policy_throughput)}))
    return out


def spread_of(runs: list[dict[str, Any]], oracle_costs: list[float], days: float = 1.0) -> dict[str, Any]:
    """Mean and worst over seeds of one variant's runs (one per seed, in the order of ``oracle_costs``)."""
    ratios = [r["cost_usd"] / cost for r, cost in zip(runs, oracle_costs, strict=True)]
    slos = [r["slo_attainment"] for r in runs]
    return {
        "usd_per_day_mean": round(_mean([r["cost_usd"] for r in runs]) / days, 2),
        "ratio_mean": round(_mean(ratios), 4),
        "ratio_worst": round(max(ratios), 4),
        "slo_mean": round(_mean(slos), 4),
        "slo_worst": round(min(slos), 4),
        "ratios": ratios,
        "slos": slos,
    }


def _oracles(scns: list[Scenario], workers: int) -> list[MeasuredOracle]:
    if workers <= 1 or len(scns) <= 1:
        return [measured_oracle(s) for s in scns]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(scns)), mp_context=ctx) as pool:
        return list(pool.map(measured_oracle, scns))


def compare_seeds(scn: Scenario, seeds: list[int], workers: int = 2) -> dict[str, Any]:
    began = time.perf_counter()
    scns = [with_seed(scn, s) for s in seeds]
    oracles = _oracles(scns, workers)
    variants = [variants_for(s, mo.policy_throughput) for s, mo in zip(scns, oracles, strict=True)]
    runs = run_jobs([(s, v) for s, vs in zip(scns, variants, strict=True) for v in vs], workers)
    per_seed, k = [], 0
    for s, mo, vs in zip(scns, oracles, variants, strict=True):
        per_seed.append(comparison_json(s, mo, runs[k : k + len(vs)], 0.0))
        k += len(vs)
    for r in per_seed:
        r.pop("wall_s")
    days = per_day_rows(scn, per_seed)
    first = per_seed[0]
    return {
        **{key: first[key] for key in ("config", "pool", "traffic", "start", "tz", "days", "warmup_days", "slo")},
        "window": first["window"],
        "seeds": seeds,
        "oracle": {
            "cost_per_day_usd_mean": round(_mean([r["oracle"]["cost_per_day_usd"] for r in per_seed]), 2),
            "throughput_at_slo_rps_per_replica": first["oracle"]["throughput_at_slo_rps_per_replica"],
        },
        "policies": _spread(per_seed, days),
        "per_seed": per_seed,
        "per_day": days,
        "wall_s": round(time.perf_counter() - began, 2),
    }


def per_day_rows(scn: Scenario, per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    zone = ZoneInfo(scn.tz)
    rows = []
    for r in per_seed:
        oracle_days = r["oracle"]["daily_cost_usd"]
        for p in r["policies"]:
            for d in p["per_day"]:
                oracle_cost = oracle_days[d["day"]]
                noon = scn.options.start_epoch_s + d["day"] * DAY_S + DAY_S / 2
                rows.append(
                    {
                        "seed": r["seed"],
                        "day": d["day"],
                        "date": datetime.fromtimestamp(noon, zone).date().isoformat(),
                        "policy": p["name"],
                        "cost_usd": d["cost_usd"],
                        "oracle_cost_usd": oracle_cost,
                        "ratio_to_oracle": round(d["cost_usd"] / oracle_cost, 4) if oracle_cost > 0 else None,
                        "slo_attainment": d["slo_attainment"],
                    }
                )
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _spread(per_seed: list[dict[str, Any]], days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(p["name"] for p in per_seed[0]["policies"]):
        rows = [(r["seed"], r["policies"][i]) for r in per_seed]
        ratios = [(p["ratio_to_oracle"], seed) for seed, p in rows if p["ratio_to_oracle"] is not None]
        slos = [(p["slo_attainment"], seed) for seed, p in rows if p["slo_attainment"] is not None]
        mine = [d for d in days if d["policy"] == name]
        by_ratio = [d for d in mine if d["ratio_to_oracle"] is not None]
        by_slo = [d for d in mine if d["slo_attainment"] is not None]
        out.append(
            {
                "name": name,
                "cost_per_day_usd_mean": round(_mean([p["cost_per_day_usd"] for _, p in rows]), 2),
                "ratio_mean": round(_mean([r for r, _ in ratios]), 4) if ratios else None,
                "ratio_worst": _worst(max(ratios)) if ratios else None,
                "slo_mean": round(_mean([v for v, _ in slos]), 4) if slos else None,
                "slo_worst": _worst(min(slos)) if slos else None,
                "worst_day_ratio": _day(max(by_ratio, key=lambda d: d["ratio_to_oracle"])) if by_ratio else None,
                "worst_day_slo": _day(min(by_slo, key=lambda d: d["slo_attainment"])) if by_slo else None,
            }
        )
    return out


def _worst(value_seed: tuple[float, int]) -> dict[str, Any]:
    return {"value": value_seed[0], "seed": value_seed[1]}


def _day(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("seed", "date", "ratio_to_oracle", "slo_attainment")}
