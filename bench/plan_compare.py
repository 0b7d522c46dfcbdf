"""How long does ``ebbtide plan compare`` take: 7 policies (the seed's config as "yours" + 6 baselines) and the
oracle on one business-hours weekday, 7 warm-up days for the learning policy, both cores. Goal: <= 60 s wall.

Records the wall seconds of the whole comparison (what a user waits for), each run's own wall seconds, the
machine's load average (the cores are shared; a busy machine is slower), and the comparison itself.

    .venv/bin/python bench/plan_compare.py            # writes bench/results/plan_compare.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "seed-sagemaker.yaml"
OUT = ROOT / "bench" / "results" / "plan_compare.json"
GOAL_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--warmup-days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from ebbtide.plan.compare import compare
    from ebbtide.plan.runner import load_scenario

    load_before = os.getloadavg()
    began = time.perf_counter()
    scn = load_scenario(
        CONFIG, traffic="business-hours", days=args.days, warmup_days=args.warmup_days, seed=args.seed
    )
    result = compare(scn, workers=args.workers).result
    wall_s = time.perf_counter() - began
    report = {
        "benchmark": "plan_compare",
        "config": str(CONFIG.relative_to(ROOT)),
        "days": args.days,
        "warmup_days": args.warmup_days,
        "workers": args.workers,
        "policies": len(result["policies"]),
        "wall_s": round(wall_s, 2),
        "goal_wall_s": GOAL_S,
        "meets_goal": wall_s <= GOAL_S,
        "run_wall_s": {p["name"]: p["wall_s"] for p in result["policies"]},
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "comparison": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(
        f"  {p['name']:<28} ${p['cost_per_day_usd']:>9,.2f}/day  SLO {p['slo_attainment']}  "
        f"x{p['ratio_to_oracle']}  ({p['wall_s']} s)"
        for p in result["policies"]
    )
    print(f"oracle ${result['oracle']['cost_per_day_usd']:,.2f}/day\n{rows}")
    print(f"{len(result['policies'])} policies x {args.days:g} day: {wall_s:.1f} s wall (goal {GOAL_S:g} s)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
