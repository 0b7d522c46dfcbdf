"""Run a pool's predictive policy over a grid of its settings on several seeds: cost x oracle and SLO per setting.

A setting names a predictive field (``error_quantile``) or, with its kind in front, a field of another of the
pool's policies (``queue_depth.target``); ``null`` is a value (a field unset).

For choosing settings *out of sample*: run the grid on tuning seeds (e.g. 100-109), pick by a rule stated before
the run (the cheapest setting whose mean and worst attainment are >= 99 %), then measure only that setting on
other seeds. Every run of the grid is printed; the measured seeds are never part of it.

    .venv/bin/python examples/predictive_grid.py -c examples/seed-standby.yaml --seeds 100-109 \\
        --set smooth_quantile=0.5,0.6 --set queue_depth.target=4,16 [--variant "cold only"] [--out grid.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``name=v1,v2`` → {name: [v1, v2]} (values as YAML scalars: numbers, true/false, strings)."""
    import yaml

    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise SystemExit(f"--set {item!r}: expected name=value[,value...]")
        grid[name] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


def combos(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def with_settings(pool: Any, settings: dict[str, Any]) -> Any:
    """``pool`` with its policies' fields updated (validated: a bad name or value fails here). A name is a
    predictive field (``smooth_quantile``) or ``kind.field`` for another of the pool's policies
    (``queue_depth.target``)."""
    from ebbtide.plan.baselines import with_policies

    by_kind: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        kind, _, field = name.rpartition(".")
        by_kind.setdefault(kind or "predictive", {})[field] = value
    policies = []
    for spec in pool.scaling.policies:
        if spec.kind in by_kind:
            spec = type(spec).model_validate({**spec.model_dump(exclude_unset=True), **by_kind.pop(spec.kind)})
        policies.append(spec)
    if by_kind:
        raise SystemExit(f"the pool has no {' or '.join(sorted(by_kind))} policy to set")
    return with_policies(pool, policies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, required=True)
    parser.add_argument("--seeds", default="100-109")
    parser.add_argument("--set", action="append", default=[], dest="grid", help="name=v1,v2 (repeatable)")
    parser.add_argument("--variant", default="cold only", help="Which of the pool's variants (substring)")
    parser.add_argument("--warmup-days", type=float, default=7.0)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from ebbtide.plan.runner import Variant, run_jobs
    from ebbtide.plan.seeds import parse_seeds, seed_runs, spread_of

    seeds, grid = parse_seeds(args.seeds), parse_grid(args.grid)
    settings = combos(grid)
    began = time.perf_counter()
    jobs: list[tuple[Any, Variant]] = []
    measured = seed_runs(args.config, seeds, days=args.days, warmup_days=args.warmup_days)
    for sr in measured:
        yours = [v for v in list(sr.variants.values())[:4] if args.variant in v.name]
        if not yours:
            raise SystemExit(f"no variant of the pool matches {args.variant!r}")
        jobs += [(sr.scenario, Variant(str(s), with_settings(yours[0].pool, s))) for s in settings]
    runs = run_jobs(jobs, args.workers)
    oracle_costs = [sr.oracle.oracle.cost_usd for sr in measured]

    rows = []
    print(f"{'setting':<48} {'$/day mean':>11} {'x oracle mean (worst)':>22} {'SLO mean (worst)':>20}")
    for i, setting in enumerate(settings):
        spread = spread_of(runs[i :: len(settings)], oracle_costs, args.days)
        del spread["ratios"], spread["slos"]
        row = {"setting": setting, **spread}
        rows.append(row)
        print(f"{json.dumps(setting):<48} {row['usd_per_day_mean']:>11,.2f} {row['ratio_mean']:>12.3f} "
              f"({row['ratio_worst']:.3f}) {row['slo_mean']:>12.2%} ({row['slo_worst']:.2%})")
    if args.out is not None:
        args.out.write_text(json.dumps({"config": str(args.config), "seeds": seeds, "variant": args.variant,
                                        "rows": rows, "wall_s": round(time.perf_counter() - began, 1)},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
