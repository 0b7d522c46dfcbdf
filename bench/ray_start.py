"""Replica start time, scale decision → ready, through the Ray provider vs the local provider, in one run.

Usage: ``.venv/bin/python bench/ray_start.py [--model tiny|default] [--reps 3]`` →
bench/results/ray_vs_local_start.json. Starts a throwaway two-node Ray cluster on loopback (head 127.0.0.2,
worker 127.0.0.3, one CPU each) and always kills it. Each rep asks a Fleet for one replica with the local
provider, then one with the Ray provider (alternating, so machine noise hits both), and times
``set_desired(1)`` → READY; the replica is then stopped. Needs the ``ray`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp

from ebbtide.config import Config, RayProviderSpec
from ebbtide.core.signals import ReplicaState
from ebbtide.engines import build_engine
from ebbtide.engines.base import Engine
from ebbtide.providers.base import Provider
from ebbtide.providers.local import LocalProvider
from ebbtide.providers.ray.cluster import LocalRayCluster, NodeSpec
from ebbtide.providers.ray.provider import RayProvider
from ebbtide.serve.control.fleet import Fleet

RESULTS = Path(__file__).parent / "results" / "ray_vs_local_start.json"
TIMEOUT_S = 180.0


def pool_config(model: str, address: str) -> Config:
    return Config.model_validate({
        "provider": {"kind": "ray", "address": address, "namespace": "bench"},
        "pools": [{
            "name": "bench",
            "engine": {"kind": "llamacpp", "model": model, "slots": 1, "threads": 1, "ctx_per_slot": 512},
            "replica": {"startup_timeout_s": TIMEOUT_S, "stop_grace_s": 3},
            "scaling": {"min_replicas": 0, "max_replicas": 1},
            "ray": {"num_cpus": 1},
        }],
    })  # fmt: skip


async def start_once(cfg: Config, provider: Provider, engine: Engine, session: aiohttp.ClientSession,
                     ids: count[int]) -> float:
    fleet = Fleet(cfg.pools[0], provider, engine, session, lambda *a: None, lambda: f"bench-{next(ids)}",
                  max_queue=10)
    t0 = time.monotonic()
    fleet.set_desired(1)
    try:
        while not any(r.state is ReplicaState.READY for r in fleet.replicas.values()):
            if any(r.state is ReplicaState.FAILED for r in fleet.replicas.values()):
                raise RuntimeError("replica failed to start")
            if time.monotonic() - t0 > TIMEOUT_S:
                raise TimeoutError(f"no ready replica within {TIMEOUT_S}s")
            await asyncio.sleep(0.005)
        return time.monotonic() - t0
    finally:
        await fleet.close()


async def measure(cfg: Config, state: Path, reps: int) -> dict[str, list[float]]:
    engine = build_engine(cfg.pools[0].engine)
    assert isinstance(cfg.provider, RayProviderSpec)
    providers: dict[str, Provider] = {"local": LocalProvider(state), "ray": RayProvider(cfg.provider, state)}
    times: dict[str, list[float]] = {name: [] for name in providers}
    ids = count()
    async with aiohttp.ClientSession() as session:
        try:
            for provider in providers.values():  # warm imports, page cache and Ray's connection, unmeasured
                await start_once(cfg, provider, engine, session, ids)
            for _ in range(reps):
                for name, provider in providers.items():
                    times[name].append(await start_once(cfg, provider, engine, session, ids))
        finally:
            for provider in providers.values():
                await provider.close()
    return times


def main(model: str, reps: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ebr-", dir="/tmp"))  # short: Ray's socket paths live under it
    with tempfile.TemporaryDirectory() as state:
        if model == "tiny":
            from ebbtide.testing.tiny_gguf import make_tiny_llama_gguf

            model = str(make_tiny_llama_gguf(Path(state) / "tiny.gguf"))
        nodes = [NodeSpec("head", 1, {"head": 1}), NodeSpec("worker", 1, {"worker": 1})]
        with LocalRayCluster(root, nodes) as cluster:
            times = asyncio.run(measure(pool_config(model, cluster.address), Path(state), reps))
            starts = cluster.starts
    local, ray = times["local"], times["ray"]
    return {
        "benchmark": "ray_vs_local_start",
        "what": "Fleet.set_desired(1) -> replica READY (scale decision -> ready), same engine and model",
        "model": Path(model).name if model.endswith(".gguf") else model,
        "reps": reps,
        "local_s": local,
        "ray_s": ray,
        "local_median_s": statistics.median(local),
        "ray_median_s": statistics.median(ray),
        "ray_extra_median_s": statistics.median(ray) - statistics.median(local),
        "ray_node_start_s": [{"node": n, "attempt": a, "seconds": s} for n, a, s in starts],
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny", help="tiny, default (Gemma) or a .gguf path")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    result = main(args.model, args.reps)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
