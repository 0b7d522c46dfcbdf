"""Cold start: scale decision → replica ready through ebbtide vs the bare engine process start → /health 200.

Usage: ``.venv/bin/python bench/cold_start.py [--model default|tiny] [--reps 5]`` → bench/results/cold_start.json.
Both paths run alternately in one process on the same model, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from ebbtide.config import Config
from ebbtide.core.signals import ReplicaState
from ebbtide.engines import build_engine
from ebbtide.engines.base import Engine, Health
from ebbtide.providers.local import LocalProvider, free_port
from ebbtide.serve.control.fleet import Fleet

RESULTS = Path(__file__).parent / "results" / "cold_start.json"


def pool_config(model: str) -> Config:
    return Config.model_validate({"pools": [{
        "name": "bench",
        "engine": {"kind": "llamacpp", "model": model, "slots": 4, "threads": 2},
        "scaling": {"min_replicas": 0, "max_replicas": 1},
    }]})


async def bare_start(engine: Engine, session: aiohttp.ClientSession) -> float:
    port = free_port()
    plan = engine.launch_plan(port, 2, None)
    t0 = time.monotonic()
    proc = subprocess.Popen(plan.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while await engine.health(session, f"http://127.0.0.1:{port}") is not Health.READY:
            if proc.poll() is not None:
                raise RuntimeError("bare engine exited")
            await asyncio.sleep(0.01)
        return time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(10)


async def ebbtide_start(cfg: Config, engine: Engine, session: aiohttp.ClientSession, state: Path) -> float:
    pool = cfg.pools[0]
    ids = iter(range(1_000_000))
    fleet = Fleet(pool, LocalProvider(state), engine, session, lambda *a: None,
                  lambda: f"bench-{next(ids)}", max_queue=10)
    t0 = time.monotonic()
    fleet.set_desired(1)
    try:
        while not any(r.state is ReplicaState.READY for r in fleet.replicas.values()):
            if any(r.state is ReplicaState.FAILED for r in fleet.replicas.values()):
                raise RuntimeError("replica failed")
            await asyncio.sleep(0.005)
        return time.monotonic() - t0
    finally:
        await fleet.close()


async def main(model: str, reps: int) -> dict[str, Any]:
    if model == "tiny":
        from ebbtide.testing.tiny_gguf import make_tiny_llama_gguf

        model = str(make_tiny_llama_gguf(Path(tempfile.mkdtemp()) / "tiny.gguf"))
    cfg = pool_config(model)
    engine = build_engine(cfg.pools[0].engine)
    bare, through = [], []
    async with aiohttp.ClientSession() as session:
        with tempfile.TemporaryDirectory() as state:
            await bare_start(engine, session)  # warm the page cache and imports once, unmeasured
            for _ in range(reps):
                bare.append(await bare_start(engine, session))
                through.append(await ebbtide_start(cfg, engine, session, Path(state)))
    med_bare, med_eb = statistics.median(bare), statistics.median(through)
    return {
        "benchmark": "cold_start",
        "model": cfg.pools[0].engine.model,
        "reps": reps,
        "bare_engine_s": bare,
        "through_ebbtide_s": through,
        "bare_median_s": med_bare,
        "ebbtide_median_s": med_eb,
        "overhead_median_s": med_eb - med_bare,
        "ratio_median": med_eb / med_bare,
        "overhead_paired_median_s": statistics.median(t - b for t, b in zip(through, bare, strict=True)),
        "goal_overhead_s": 0.5,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default", help="'default' (embedded Gemma), 'tiny', or a .gguf path")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(main(args.model, args.reps))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
