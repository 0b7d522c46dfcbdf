"""Cold start, phase by phase, and the wake from a hot standby: scale decision → first token on the new replica.

Usage: ``.venv/bin/python bench/cold_start.py [--model default|tiny|PATH] [--reps 5]`` → bench/results/cold_start.json.

Each repetition runs, in one process and alternately (so machine noise hits all of them):

- ``bare``: the engine's own process start → ``/health`` 200, without ebbtide (the floor of any cold start);
- ``cold``: a ``serve`` fleet (local provider) at 0 replicas is told ``desired 1`` (the scale decision), starts
  a replica (which ebbtide warms up with one 1-token request before it takes traffic), and the first token of
  a 1-token completion sent to the replica as soon as it is ready is the end; the phases the fleet recorded
  for that start (``serve/control/phases.py``) are kept;
- ``hot``: the same fleet with ``scaling.standby: {tier: hot, count: 1}`` and ``desired 0``: once the reserve
  replica is loaded, warmed up and paused (SIGSTOP), ``desired 1`` promotes it (SIGCONT → health 200 → ready)
  and the same request's first token is the end. The decision also sets the reserve to 0, so that no
  replacement loads on this 2-core host meanwhile: on a cluster it would load on another node.
- ``hot_refill``: the same, but the reserve is refilled at once as configured, so the replacement's model load
  shares the 2 cores with the woken replica's first token (what a single host sees).

Both start from a quiet second after the fleet is set up (a parked standby waits a while in practice, and its
``pause_watch`` guard has started by then).

The result has the median of each phase over the cold starts, the medians of decision → ready and decision →
first token for cold and hot, and their ratio. Goal (issue 16): hot ≤ 0.2 s.
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
from ebbtide.core.standby import HOT, StandbyWish
from ebbtide.engines import build_engine
from ebbtide.engines.base import Engine, Health
from ebbtide.providers.local import LocalProvider, free_port
from ebbtide.serve.control.fleet import Fleet
from ebbtide.serve.control.phases import PHASES
from ebbtide.serve.gateway.broker import Replica

RESULTS = Path(__file__).parent / "results" / "cold_start.json"
GOAL_HOT_S = 0.2
QUIET_S = 1.0  # before each decision: a parked standby has sat a while in practice (and pause_watch has started)
FIRST_TOKEN_BODY = {"prompt": "The capital of France is", "max_tokens": 1, "temperature": 0}


def pool_config(model: str, standby: int) -> Config:
    return Config.model_validate({"pools": [{
        "name": "bench",
        "engine": {"kind": "llamacpp", "model": model, "slots": 4, "threads": 2},
        "scaling": {"min_replicas": 0, "max_replicas": 1, "standby": {"tier": "hot", "count": standby}},
    }]})  # fmt: skip


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


async def first_token(session: aiohttp.ClientSession, base_url: str) -> None:
    async with session.post(f"{base_url}/v1/completions", json=FIRST_TOKEN_BODY) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"completion answered {resp.status}")


async def wait_for(fleet: Fleet, state: ReplicaState, deadline_s: float = 120.0) -> Replica:
    limit = time.monotonic() + deadline_s
    while time.monotonic() < limit:
        if any(r.state is ReplicaState.FAILED for r in fleet.replicas.values()):
            raise RuntimeError("a replica failed")
        found = [r for r in fleet.replicas.values() if r.state is state]
        if found:
            return found[0]
        await asyncio.sleep(0.002)
    raise TimeoutError(f"no replica {state.value} within {deadline_s:g} s")


async def one_start(model: str, standby: int, session: aiohttp.ClientSession, state_dir: Path,
                    refill: bool = False) -> dict[str, Any]:
    """Scale 0 → 1 (promoting the parked hot standby when ``standby``): decision → ready and → first token."""
    cfg = pool_config(model, standby)
    pool = cfg.pools[0]
    ids = iter(range(1_000_000))
    recorded: list[tuple[str, dict[str, float]]] = []
    fleet = Fleet(pool, LocalProvider(state_dir), build_engine(pool.engine), session, lambda *a: None,
                  lambda: f"bench-{next(ids)}", max_queue=10,
                  record_phases=lambda replica, kind, phases: recorded.append((kind, phases)))
    try:
        fleet.set_desired(0)
        if standby:
            await wait_for(fleet, ReplicaState.STANDBY)
        await asyncio.sleep(QUIET_S)
        t0 = time.monotonic()
        fleet.set_desired(1, standby=None if refill else StandbyWish(HOT, 0))  # the scale decision
        replica = await wait_for(fleet, ReplicaState.READY)
        ready_s = time.monotonic() - t0
        await first_token(session, replica.base_url)
        token_s = time.monotonic() - t0
        phases = next(p for kind, p in recorded if kind == ("wake-hot" if standby else "cold"))
        return {"ready_s": ready_s, "first_token_s": token_s, "phases": phases}
    finally:
        await fleet.close()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


async def main(model: str, reps: int) -> dict[str, Any]:
    if model == "tiny":
        from ebbtide.testing.tiny_gguf import make_tiny_llama_gguf

        model = str(make_tiny_llama_gguf(Path(tempfile.mkdtemp()) / "tiny.gguf"))
    engine = build_engine(pool_config(model, 0).pools[0].engine)
    bare: list[float] = []
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "hot": [], "hot_refill": []}
    async with aiohttp.ClientSession() as session:
        with tempfile.TemporaryDirectory() as state:
            await bare_start(engine, session)  # warm the page cache and imports once, unmeasured
            for _ in range(reps):
                bare.append(await bare_start(engine, session))
                runs["cold"].append(await one_start(model, 0, session, Path(state)))
                runs["hot"].append(await one_start(model, 1, session, Path(state)))
                runs["hot_refill"].append(await one_start(model, 1, session, Path(state), refill=True))
    return _result(model, reps, bare, runs)


def _result(model: str, reps: int, bare: list[float], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    cold, hot = runs["cold"], runs["hot"]
    phase_medians = {
        name: _median([r["phases"].get(name, 0.0) for r in cold]) for name in PHASES
        if any(name in r["phases"] for r in cold)
    }
    cold_token = _median([r["first_token_s"] for r in cold])
    hot_token = _median([r["first_token_s"] for r in hot])
    refill = runs["hot_refill"]
    return {
        "benchmark": "cold_start",
        "when_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "model": model,
        "reps": reps,
        "bare_engine_s": [round(b, 4) for b in bare],
        "bare_median_s": _median(bare),
        "cold": {"decision_to_ready_median_s": _median([r["ready_s"] for r in cold]),
                 "decision_to_first_token_median_s": cold_token,
                 "phase_medians_s": phase_medians, "runs": cold},
        "hot_standby": {"decision_to_ready_median_s": _median([r["ready_s"] for r in hot]),
                        "decision_to_first_token_median_s": hot_token,
                        "wake_median_s": _median([r["phases"].get("wake", 0.0) for r in hot]), "runs": hot},
        "hot_standby_refill_on_same_host": {
            "decision_to_ready_median_s": _median([r["ready_s"] for r in refill]),
            "decision_to_first_token_median_s": _median([r["first_token_s"] for r in refill]), "runs": refill},
        "ratio_hot_vs_cold_first_token": round(hot_token / cold_token, 4),
        "goal_hot_first_token_s": GOAL_HOT_S,
        "goal_met": hot_token <= GOAL_HOT_S,
        "python": sys.version.split()[0],
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="'default' (embedded Gemma), 'tiny', or a .gguf path")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(main(args.model, args.reps))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    print("cold phases (median s):", result["cold"]["phase_medians_s"])
    print(f"decision -> first token: cold {result['cold']['decision_to_first_token_median_s']:.3f} s, "
          f"hot standby {result['hot_standby']['decision_to_first_token_median_s']:.3f} s, with the refill on "
          f"this host {result['hot_standby_refill_on_same_host']['decision_to_first_token_median_s']:.3f} s")
