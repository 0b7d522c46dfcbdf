"""How fast is the twin, and is its memory flat in the number of requests?

Runs ``examples/seed-sagemaker.yaml`` on the business-hours profile (the seed's rates, ~0.64 M requests per
weekday) for 1 day, 2 days and a week (Wednesday to Tuesday, weekend included), each in a fresh child process
that reports wall and CPU seconds and its peak RSS (``resource.getrusage``). Memory is flat when the 2-day and
7-day peaks stay near the 1-day peak while the request count grows 2-5x. Optionally ``--tracemalloc`` adds
Python-heap peaks.

    .venv/bin/python bench/sim_speed.py            # writes bench/results/sim_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "seed-sagemaker.yaml"
OUT = ROOT / "bench" / "results" / "sim_speed.json"
GOALS_S = {1.0: 10.0, 7.0: 60.0}


def child(days: float, trace_heap: bool) -> dict[str, Any]:
    from ebbtide.sim.output import summary
    from ebbtide.sim.scenario import ScenarioInput, build_simulation

    if trace_heap:
        tracemalloc.start()
    sim, _ = build_simulation(ScenarioInput(config_path=CONFIG, days=days, seed=1))
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    s = summary(sim, wall)
    out = {
        "days": days,
        "requests": s["requests"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "us_per_request_cpu": round(1e6 * cpu / max(s["requests"], 1), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cost_usd": s["cost_usd"],
        "slo_attainment": s["slo_attainment"],
    }
    if trace_heap:
        out["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
    return out


def run_child(days: float, trace_heap: bool) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", str(days)] + (["--tracemalloc"] if trace_heap else [])
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", type=float, default=None)
    ap.add_argument("--tracemalloc", action="store_true", help="also measure the Python heap (slower runs)")
    ap.add_argument("--days", type=float, nargs="*", default=[1.0, 2.0, 7.0])
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.tracemalloc)))
        return
    runs = []
    for days in args.days:
        r = run_child(days, args.tracemalloc)
        goal = GOALS_S.get(days)
        r["goal_wall_s"] = goal
        r["meets_goal"] = None if goal is None else r["wall_s"] <= goal
        print(json.dumps(r), flush=True)
        runs.append(r)
    base = runs[0]
    report = {
        "benchmark": "sim_speed",
        "config": str(CONFIG.relative_to(ROOT)),
        "traffic": "business-hours from Wednesday 2028-02-23 (America/New_York), seed 1",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "note": "the machine is shared with other work; cpu_s is the less noisy figure",
        "runs": runs,
        "memory_flat": {
            f"{r['days']:g}d_vs_{base['days']:g}d": {
                "requests_ratio": round(r["requests"] / base["requests"], 2),
                "peak_rss_ratio": round(r["peak_rss_mb"] / base["peak_rss_mb"], 3),
            }
            for r in runs[1:]
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
