"""Replay a finished demo's twin from its state dir: the same config, arrivals, calibration table and measured
cold starts, through ``run_twin`` again (deterministic for a seed), e.g. to see what a change to the twin does
to a run that was measured once. Live figures are read back from ``demo-results.json``, never re-measured.

Usage: ``python -m ebbtide.demo.replay STATE_DIR [STATE_DIR ...] [--seeds 0,1,2]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml

from ebbtide.config import Config
from ebbtide.demo.plan import DemoPlan
from ebbtide.demo.twin import HOST_RESERVED_CORES, run_twin
from ebbtide.serve.control.store import Store

__all__ = ["replay_twin"]

_PLAN_FIELDS = ("minutes", "compress", "seed", "rate_scale", "prompt_tokens", "output_tokens",
                "target_per_replica_per_min", "lead_s")


def _twin_inputs(state_dir: Path, plan: dict[str, Any]) -> tuple[int, list[float]]:
    """(replicas ready when the traffic started, measured cold starts); runs saved before these were recorded
    in ``demo-results.json`` get them from serve's store."""
    if "initial_replicas" in plan:
        return int(plan["initial_replicas"]), [float(s) for s in plan["cold_starts_s"]]
    store = Store(state_dir / "ebbtide.db")
    try:
        replicas = store.replicas("default")
    finally:
        store.close()
    wall0 = float(plan["wall_start_s"])
    ready = sum(1 for r in replicas if r["ready_at"] is not None and r["ready_at"] <= wall0
                and (r["stopped_at"] is None or r["stopped_at"] > wall0))
    return max(1, ready), [r["ready_at"] - r["requested_at"] for r in replicas if r["ready_at"] is not None]


def replay_twin(
    state_dir: Path, *, seed: int | None = None, calibration: dict[str, Any] | None = None,
    prompt_ref_tokens: int | Literal["plan"] | None = "plan",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(live figures as saved, a fresh twin summary). ``calibration`` replaces the run's table;
    ``prompt_ref_tokens``: "plan" = the plan's prompt length (what ``run_demo`` passes), None = the table's."""
    saved = json.loads((state_dir / "demo-results.json").read_text())
    p = saved["plan"]
    plan = DemoPlan(**{k: p[k] for k in _PLAN_FIELDS})
    cfg = Config.model_validate(yaml.safe_load((state_dir / "demo.yaml").read_text()))
    table = calibration or json.loads((state_dir / "calibration.json").read_text())
    initial, cold = _twin_inputs(state_dir, p)
    with tempfile.TemporaryDirectory() as tmp:
        twin = run_twin(cfg, table, cold, plan.arrivals(), compress=plan.compress,
                        policy_start_epoch_s=float(p["policy_start_s"]), duration_s=plan.duration_s,
                        initial_replicas=initial, work_dir=Path(tmp), seed=plan.seed if seed is None else seed,
                        prompt_ref_tokens=plan.prompt_tokens if prompt_ref_tokens == "plan" else prompt_ref_tokens,
                        reserved_cores=float(p.get("side_cores", HOST_RESERVED_CORES)))
    return saved["live"], twin


def _line(name: str, s: dict[str, Any], live: dict[str, Any] | None = None) -> str:
    def rel(key: str) -> str:
        return "" if live is None else f" ({100 * (s[key] - live[key]) / live[key]:+.1f}%)"

    return (f"{name:8s} latency P50 {s['latency_p50_s']:.3f} P95 {s['latency_p95_s']:.3f}{rel('latency_p95_s')}"
            f"  TTFT P50 {s['ttft_p50_s']:.3f} P95 {s['ttft_p95_s']:.3f}"
            f"  replica-s {s['replica_seconds']:.1f}{rel('replica_seconds')}"
            f"  cold {s['cold_starts']}  decisions {s['decisions']} ({s['scale_outs']}/{s['scale_ins']})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state_dirs", nargs="+", type=Path)
    ap.add_argument("--seeds", default="0", help="Comma-separated twin seeds.")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    for d in args.state_dirs:
        print(d)
        for i, seed in enumerate(seeds):
            live, twin = replay_twin(d, seed=seed)
            if i == 0:
                print(_line("live", live))
            print(_line(f"twin s{seed}", twin, live))


if __name__ == "__main__":
    main()
