"""Is predictive cheaper than the seed's SageMaker policy *at equal or better SLO attainment*, seed by seed?

As configured (target 600 invocations/replica/min) SageMaker is cheaper and misses more windows, so the two are
not compared at the same attainment. This study runs, for every seed, the predictive baseline and the SageMaker
baseline at a grid of lower targets (more replicas, more attainment) on the same measured days, and reports the
cheapest SageMaker target whose attainment is at least predictive's on that seed, and predictive's cost relative
to it. Out of sample like ``plan compare --seeds``: each seed learns its own warm-up days, then is measured.
Nothing here is tuned: the grid is fixed and every run is reported.

    .venv/bin/python examples/equal_attainment.py --seeds 0-9 --days 7 [--out equal_attainment.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "seed-sagemaker.yaml"
TARGETS = (600, 540, 480, 420, 360, 300, 240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--warmup-days", type=float, default=7.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="Also write every run as JSON here")
    args = parser.parse_args()

    from ebbtide.core.policies.target_tracking import TargetTrackingSpec
    from ebbtide.plan.baselines import with_policies
    from ebbtide.plan.runner import Variant, run_jobs
    from ebbtide.plan.seeds import parse_seeds, seed_runs

    seeds = parse_seeds(args.seeds)
    began = time.perf_counter()
    jobs: list[tuple[Any, Variant]] = []
    measured = seed_runs(CONFIG, seeds, traffic="business-hours", days=args.days, warmup_days=args.warmup_days)
    oracle_cost = {sr.seed: sr.oracle.oracle.cost_usd for sr in measured}
    for sr in measured:
        scn, by_name = sr.scenario, sr.variants
        jobs.append((scn, by_name["predictive"]))
        sagemaker = by_name["sagemaker (seed 000)"].pool
        for target in TARGETS:
            policies = [
                TargetTrackingSpec.model_validate({"target": target}) if isinstance(p, TargetTrackingSpec) else p
                for p in sagemaker.scaling.policies
            ]
            jobs.append((scn, Variant(f"sagemaker target {target}", with_policies(sagemaker, policies))))
    runs = run_jobs(jobs, args.workers)

    rows = []
    for seed in seeds:
        mine = [r for (scn, _), r in zip(jobs, runs, strict=True) if scn.options.seed == seed]
        pred, sweep = mine[0], mine[1:]
        equal = [r for r in sweep if r["slo_attainment"] >= pred["slo_attainment"]]
        best = min(equal, key=lambda r: r["cost_usd"]) if equal else None
        rows.append(
            {
                "seed": seed,
                "oracle_usd": round(oracle_cost[seed], 2),
                "predictive": {"usd": pred["cost_usd"], "slo": pred["slo_attainment"]},
                "sagemaker": [{"name": r["name"], "usd": r["cost_usd"], "slo": r["slo_attainment"]} for r in sweep],
                "sagemaker_at_equal_slo": best["name"] if best else None,
                "predictive_cost_vs_it": round(pred["cost_usd"] / best["cost_usd"], 4) if best else None,
            }
        )
        vs = f"{rows[-1]['predictive_cost_vs_it']}x of {best['name']}" if best else "no target reaches it"
        print(f"seed {seed}: predictive ${pred['cost_usd']:.2f} at {pred['slo_attainment']:.2%}; {vs}")
    report = {
        "benchmark": "equal_attainment",
        "config": str(CONFIG.relative_to(ROOT)),
        "days": args.days,
        "warmup_days": args.warmup_days,
        "targets": list(TARGETS),
        "seeds": rows,
        "cheaper_on_every_seed": all(
            r["predictive_cost_vs_it"] is not None and r["predictive_cost_vs_it"] < 1 for r in rows
        ),
        "wall_s": round(time.perf_counter() - began, 1),
    }
    print(f"cheaper at equal or better attainment on every seed: {report['cheaper_on_every_seed']}")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
