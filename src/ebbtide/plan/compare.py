"""``ebbtide plan compare``: the user's policy, six baselines and the oracle on the same traffic and seed; a pool
that keeps a standby is also run with the other standby tiers ("cold only", "warm standby", "hot standby").

Every variant is a twin run of the user's pool with only its policies swapped (``plan/baselines.py``), so
the differences are the policies'. The oracle (``plan/oracle.py``) is computed from the same arrivals.
Results are a plain dict (the ``--json`` shape)::

    {"oracle": {"cost_usd", "cost_per_day_usd", ...},
     "policies": [{"name", "cost_usd", "cost_per_day_usd", "slo_attainment", "ratio_to_oracle", ...}], ...}

Usage: ``result = compare(load_scenario(path, traffic="business-hours", days=7, warmup_days=7))``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ebbtide.core.cost import Price
from ebbtide.plan.baselines import baselines, with_predictive_lead
from ebbtide.plan.oracle import Oracle, SloThroughput, arrivals_of, oracle, slo_throughput
from ebbtide.plan.runner import DAY_S, Scenario, Variant, cold_start_quantile_s, run_variants
from ebbtide.plan.standby import standby_variants
from ebbtide.sim.scenario import window_json
from ebbtide.sim.unforecast import UnforecastTraffic

__all__ = [
    "POLICY_KEYS",
    "Comparison",
    "MeasuredOracle",
    "compare",
    "comparison_json",
    "forecast_throughput",
    "measured_oracle",
    "scenario_oracle",
    "variants_for",
]

POLICY_KEYS = (
    "name",
    "cost_usd",
    "cost_per_day_usd",
    "slo_attainment",
    "ratio_to_oracle",
    "cold_starts",
    "replica_hours",
    "max_replicas",
    "latency_p95_s",
    "ttft_p95_s",
    "requests",
    "rejected",
    "policies",
    "bounds",
    "per_day",
    "wall_s",
)


def _price(scn: Scenario) -> Price:
    r = scn.pool.replica
    return Price(r.hourly_usd, r.billing, r.spot.hourly_usd if r.spot else None)


def _throughput(scn: Scenario, prompt: np.ndarray, output: np.ndarray) -> SloThroughput:
    if len(prompt):
        p_tok = (float(np.mean(prompt)), float(np.percentile(prompt, 95)))
        o_tok = (float(np.mean(output)), float(np.percentile(output, 95)))
    else:
        p_tok = (float(scn.service.prompt_ref_tokens),) * 2
        o_tok = (300.0, 300.0)
    return slo_throughput(scn.service, scn.cfg.slo, p_tok, o_tok)


def forecast_throughput(scn: Scenario, measured: SloThroughput) -> SloThroughput:
    """Throughput at the SLO that the policies are configured with: the oracle's, except that an
    unforecast change of the request mix is not known in advance (the policy keeps the usual mix's figure)."""
    traffic, opt = scn.traffic, scn.options
    if not isinstance(traffic, UnforecastTraffic) or traffic.spec.mix_output == 1.0:
        return measured
    _, prompt, output = arrivals_of(traffic.inner, opt.start_epoch_s, opt.duration_s, opt.seed)
    return _throughput(scn, prompt, output)


def scenario_oracle(scn: Scenario, arrivals: tuple[np.ndarray, ...] | None = None) -> Oracle:
    """The oracle of the measured days: the arrivals the twin draws for this seed, served at the SLO."""
    times, prompt, output = arrivals or arrivals_of(
        scn.traffic, scn.options.start_epoch_s, scn.options.duration_s, scn.options.seed
    )
    thr = _throughput(scn, prompt, output)
    scaling = scn.pool.scaling
    sim = scn.pool.sim
    initial = (
        sim.initial_replicas if sim is not None and sim.initial_replicas is not None else scaling.min_replicas
    )
    return oracle(
        times,
        scn.options.duration_s,
        thr,
        scn.cold.mean_s,
        (scaling.min_replicas, scaling.max_replicas),
        initial,
        _price(scn),
    )


def variants_for(scn: Scenario, thr: SloThroughput) -> list[Variant]:
    """The user's pool ("yours") then the baselines; the twin sets unset predictive lead times to its p90 and
    unset concurrencies to the batch at the SLO."""
    lead = cold_start_quantile_s(scn.cold, 0.9)
    label = f"yours ({scn.config_path.name})" if scn.config_path is not None else "yours (embedded default)"
    concurrency = float(thr.batch)
    yours = Variant(label, with_predictive_lead(scn.pool, lead, concurrency))
    return [yours, *_tiers(yours), *baselines(scn.pool, scn.tz, thr.rps, lead, concurrency)]


def _tiers(yours: Variant) -> list[Variant]:
    """A pool that keeps a standby is also run with the other tiers (cold only, warm, hot), same policy."""
    return standby_variants(yours.pool, "yours") if yours.pool.scaling.standby.wish().wanted else []


def _oracle_json(o: Oracle, days: float) -> dict[str, Any]:
    return {
        "daily_cost_usd": [round(c, 2) for c in o.daily_cost_usd],
        "cost_usd": round(o.cost_usd, 2),
        "cost_per_day_usd": round(o.cost_usd / days, 2),
        "replica_hours": round(o.replica_hours, 3),
        "cold_starts": o.cold_starts,
        "slo_attainment": None,
        "throughput_at_slo_rps_per_replica": round(o.throughput.rps, 3),
        "batch_at_slo": o.throughput.batch,
        "slo_feasible": o.throughput.feasible,
        "cold_start_s": round(o.cold_start_s, 1),
        "bucket_s": o.bucket_s,
        "max_replicas": max(o.needed, default=0),
        "requests": o.requests,
        "note": "lower bound: replicas per minute = ceil(arrivals / throughput at the SLO), each started "
        "exactly one (mean) cold start before needed; queueing ignored, so SLO attainment is not measured",
    }


def _policy_json(run: dict[str, Any], oracle_cost: float, days: float) -> dict[str, Any]:
    row = dict(run)
    row["cost_per_day_usd"] = round(run["cost_usd"] / days, 2)
    row["ratio_to_oracle"] = round(run["cost_usd"] / oracle_cost, 4) if oracle_cost > 0 else None
    return {k: row.get(k) for k in POLICY_KEYS}


@dataclass(frozen=True)
class Comparison:
    result: dict[str, Any]  # the --json object
    timelines: dict[str, list[int]]  # replicas per minute: the oracle's need, then each run's capacity


@dataclass(frozen=True)
class MeasuredOracle:
    """The oracle of one seed's measured days, the window those days are (``window_json``) and the
    throughput at the SLO the policies are configured with (``forecast_throughput``)."""

    oracle: Oracle
    window: dict[str, Any]
    policy_throughput: SloThroughput

    @property
    def policy_rps(self) -> float:
        return self.policy_throughput.rps


def measured_oracle(scn: Scenario) -> MeasuredOracle:
    opt = scn.options
    arrivals = arrivals_of(scn.traffic, opt.start_epoch_s, opt.duration_s, opt.seed)
    times = arrivals[0]
    ends = [float(times[0]), float(times[-1])] if len(times) else []  # first and last arrival
    window = window_json(scn.traffic, opt.start_epoch_s, opt.duration_s, scn.warmup_days, scn.tz, ends)
    orc = scenario_oracle(scn, arrivals)
    return MeasuredOracle(orc, window, forecast_throughput(scn, orc.throughput))


def comparison_json(
    scn: Scenario, mo: MeasuredOracle, runs: list[dict[str, Any]], wall_s: float
) -> dict[str, Any]:
    """The ``--json`` object of one seed: scenario, oracle, one row per policy."""
    days = scn.options.duration_s / DAY_S
    return {
        "config": str(scn.config_path) if scn.config_path is not None else None,
        "pool": scn.pool.name,
        "traffic": scn.traffic.name,
        "start": runs[0]["start"] if runs else None,
        "tz": scn.tz,
        "days": days,
        "warmup_days": scn.warmup_days,
        "window": mo.window,
        "seed": scn.options.seed,
        "slo": scn.cfg.slo.model_dump(),
        "hourly_usd": _price(scn).effective_hourly_usd,
        "oracle": _oracle_json(mo.oracle, days),
        "policies": [_policy_json(r, mo.oracle.cost_usd, days) for r in runs],
        "wall_s": round(wall_s, 2),
    }


def compare(scn: Scenario, workers: int = 2) -> Comparison:
    began = time.perf_counter()
    mo = measured_oracle(scn)
    runs = run_variants(scn, variants_for(scn, mo.policy_throughput), workers)
    result = comparison_json(scn, mo, runs, time.perf_counter() - began)
    timelines = {"oracle": list(mo.oracle.needed), **{r["name"]: r["capacity_by_minute"] for r in runs}}
    return Comparison(result, timelines)
