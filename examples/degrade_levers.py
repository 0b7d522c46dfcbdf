"""Seed 003's degradation levers measured in the twin, one at a time and together, against seed 000's policy alone.

Every variant is ``examples/seed-degrade.yaml`` with levers taken out: the same 70B pool, seed policy (target
tracking 600/min + the 08:45/19:00 schedule), traffic (business-hours, the seed's Wednesday) and class mix
(80% interactive, 20% batch). "alone" has no fallback, no spot, no overnight variant, and both classes at one
priority (they share the queue fairly); each lever adds one thing back.

    .venv/bin/python examples/degrade_levers.py [--seeds 0-4] [--out levers.json]

Prints a markdown table (cost and SLO attainment per class; seed 0 = the seed day, and the mean over the seeds).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
BASE = yaml.safe_load((HERE / "seed-degrade.yaml").read_text())
PRIMARY = "llama-3-70b-writing-assistant"


def variant(name: str) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE)
    primary, fallback = cfg["pools"]
    levers = {"alone": set(), "priority classes": {"classes"}, "fallback 8B": {"fallback"},
              "spot, 1 on-demand": {"spot"}, "overnight INT4": {"variant"},
              "all levers": {"classes", "fallback", "spot", "variant"}}[name]
    if "classes" not in levers:
        cfg["gateway"]["priority_classes"] = ["any"]  # both classes rank alike: one fair queue
    if "fallback" not in levers:
        del primary["fallback"], primary["fallback_classes"]
        cfg["pools"] = [primary]
    if "spot" not in levers:
        del primary["replica"]["spot"], primary["sim"]["spot_preemptions_per_hour"]
    if "variant" not in levers:
        del primary["variants"]
        for action in primary["scaling"]["policies"][1]["actions"]:
            action.pop("variant")
    assert fallback["name"] != PRIMARY
    return cfg


NAMES = ["alone", "priority classes", "fallback 8B", "spot, 1 on-demand", "overnight INT4", "all levers"]


def run_one(args: tuple[str, int, str]) -> dict[str, Any]:
    from ebbtide.sim.output import summary
    from ebbtide.sim.scenario import ScenarioInput, build_simulation

    name, seed, tmp = args
    path = Path(tmp) / f"{NAMES.index(name)}.yaml"
    path.write_text(yaml.safe_dump(variant(name)))
    sim, _ = build_simulation(ScenarioInput(config_path=path, days=1, seed=seed))
    s = summary(sim.run())
    return {"lever": name, "seed": seed, "cost_usd": s["cost_usd"], "slo": s["slo_attainment"],
            "classes": {c: {"slo": v["slo_attainment"], "p95_s": v["latency_p95_s"], "rejected": v["rejected"]}
                        for c, v in s["classes"].items()},
            "pools": {p: v["cost_usd"] for p, v in s["pools"].items()}, "fallbacks": s["fallbacks"],
            "preemptions": s["preemptions"], "rejected": s["rejected"]}


def seeds_arg(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    seeds = seeds_arg(args.seeds)
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run_one, [(n, s, tmp) for n in NAMES for s in seeds]))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(f"seeds {seeds[0]}-{seeds[-1]}; seed 0 is the seed day (business-hours, Wednesday 2028-02-23)\n")
    print("| lever | $/day seed 0 | mean $/day | SLO all (seed 0 / mean / worst) | interactive SLO | batch SLO | "
          "batch rejected | to fallback |")
    print("|---|---|---|---|---|---|---|---|")
    for name in NAMES:
        mine = [r for r in rows if r["lever"] == name]
        day0 = next(r for r in mine if r["seed"] == seeds[0])
        mean = sum(r["cost_usd"] for r in mine) / len(mine)
        slo = [r["slo"] for r in mine]

        def pct(v: float) -> str:
            return f"{100 * v:.1f}%"

        inter = [r["classes"]["interactive"]["slo"] for r in mine]
        batch = [r["classes"]["batch"]["slo"] for r in mine]
        print(f"| {name} | ${day0['cost_usd']:.0f} | ${mean:.0f} | {pct(day0['slo'])} / {pct(sum(slo) / len(slo))}"
              f" / {pct(min(slo))} | {pct(sum(inter) / len(inter))} | {pct(sum(batch) / len(batch))} | "
              f"{sum(r['classes']['batch']['rejected'] for r in mine) / len(mine):.0f} | "
              f"{sum(r['fallbacks'] for r in mine) / len(mine):.0f} |")


if __name__ == "__main__":
    main()
