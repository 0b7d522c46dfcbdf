"""Several gateways on one Redis: what Redis adds per request, and what a second gateway process carries, one run.

Usage: ``.venv/bin/python bench/multi_gateway.py [--latency-s 5] [--throughput-s 8] [--connections 32]``
→ bench/results/multi_gateway.json.

Same upstream, client and rules as bench/gateway_overhead.py (the stub engine; ``wrk -t1`` with a Lua POST; every
run must have 0 non-2xx and 0 socket errors, else the JSON says so and the script exits 1), API keys on:
- ``sqlite``: one gateway on the embedded store (the single-machine default);
- ``redis``: one gateway with ``state: {backend: redis}`` (a real redis-server on a free loopback port): its key
  check, routing and queue are local, so this measures what the sync loop costs the hot path;
- ``redis_quota``: the same with the key's tenant under an rpm/tpm limit it never reaches, so every request runs
  the quota script in Redis (one round trip);
- ``redis_x2``: two gateway processes on the same Redis, one wrk per gateway at the same time
  (``--connections`` / 2 each), requests/s summed; measured in ``--repeat`` pairs with ``redis_one`` (the
  same first gateway alone, the second idle) taken just before, and the median pair reported (the machine is
  shared: pairs taken close together compare fairly).
Requests per gateway-CPU-second (psutil) say what one process carries per core it gets.
Latency: 1 connection for ``--latency-s`` → p50; "added" = redis − sqlite. Throughput: ``--connections`` for
``--throughput-s``. Goals (issue 17): redis_x2 ≥ 1.6 × redis's requests/s; added p50 ≤ 0.5 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import (  # the sibling benchmark's client and rules
    CHUNKS,
    LUA,
    body,
    ensure_wrk,
    free_port,
    run_wrk,
    stop,
    wait_ok,
)

from ebbtide.serve.shared.keys import RedisKeyStore
from ebbtide.serve.shared.redis_state import RedisState
from ebbtide.testing.stub_engine import spawn_stub

RESULTS = Path(__file__).resolve().parent / "results" / "multi_gateway.json"
GOAL_SCALE = 1.6
GOAL_ADDED_P50_MS = 0.5


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or sys.exit("redis-server is needed: scripts/fetch-redis installs it")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if redis.Redis.from_url(url, socket_timeout=1).ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def gateway(stub_url: str, workdir: Path, key: str, redis_url: str | None, name: str,
            ) -> Iterator[tuple[str, int]]:
    port = free_port()
    cfg: dict[str, Any] = {"pools": [{
        "name": "stub",
        "engine": {"kind": "openai", "url": stub_url + "/v1", "slots": 1024},
        "replica": {"health_interval_s": 1},
        "scaling": {"min_replicas": 1, "max_replicas": 1},
    }], "gateway": {"max_queue": 10_000, "auth": "keys"}}
    if redis_url:
        cfg["state"] = {"backend": "redis", "url": redis_url}
    config = workdir / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebbtide", "serve", "-c", str(config), "--port", str(port),
         "--state-dir", str(workdir / f"state-{name}")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(url + "/v1/chat/completions", body(False), {"Authorization": f"Bearer {key}"}, 60, proc)
        yield url, proc.pid
    finally:
        stop(proc)
        log.close()


def sqlite_key(state_dir: Path) -> str:
    from ebbtide.serve.gateway.keys import KeyStore

    store = KeyStore(state_dir / "ebbtide.db")
    try:
        return store.create("bench")[0]
    finally:
        store.close()


def cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by these gateway processes (their children are replicas: none here)."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def measure(wrk: str, lua: Path, gws: list[tuple[str, int]], key: str, args: argparse.Namespace,
            failures: list[str], target: str, latency: bool = True) -> dict[str, Any]:
    """Latency (first gateway) and throughput (all at once); the gateways' CPU seconds during the throughput run
    give requests per gateway-CPU-second, what one gateway process carries per core it gets."""
    payload = body(False)
    urls, pids = [u for u, _ in gws], [p for _, p in gws]
    for url in urls:
        run_wrk(wrk, lua, url + "/v1/chat/completions", payload, key, 4, 1)  # warm-up
    out: dict[str, Any] = {}
    if latency:
        out["latency_c1"] = run_wrk(wrk, lua, urls[0] + "/v1/chat/completions", payload, key, 1, args.latency_s)
    per = max(1, args.connections // len(urls))
    cpu0, busy0 = cpu_s(pids), psutil.cpu_times()
    with ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(lambda u: run_wrk(wrk, lua, u + "/v1/chat/completions", payload, key, per,
                                               args.throughput_s), urls))
    used, busy1 = cpu_s(pids) - cpu0, psutil.cpu_times()
    idle = (busy1.idle - busy0.idle) / max(1e-9, sum(busy1) - sum(busy0))
    requests = sum(r["requests"] for r in runs)
    out["throughput"] = {"rps": round(sum(r["rps"] for r in runs), 1), "per_gateway": runs,
                         "gateway_cpu_s": round(used, 2), "requests_per_gateway_cpu_s": round(requests / used, 1),
                         "machine_idle_fraction": round(idle, 3)}
    for name, run in [("latency_c1", out.get("latency_c1")), *(("throughput", r) for r in runs)]:
        if run and run["errors"]:
            failures.append(f"{target} {name}: {run['errors']} in {run['requests']} requests")
    t = out["throughput"]
    print(f"  {target}: {json.dumps({k: v for k, v in out.items() if k != 'throughput'})} rps {t['rps']} "
          f"req/gateway-cpu-s {t['requests_per_gateway_cpu_s']} idle {t['machine_idle_fraction']}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-s", type=float, default=5.0)
    parser.add_argument("--throughput-s", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="Pairs of one-gateway / two-gateway runs.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    wrk = ensure_wrk()
    results: dict[str, Any] = {}
    failures: list[str] = []
    with (tempfile.TemporaryDirectory(prefix="ebbtide-bench-") as tmp, spawn_stub(free_port(), chunks=CHUNKS)
          as stub):
        work = Path(tmp)
        lua = work / "post.lua"
        lua.write_text(LUA)
        key = sqlite_key(work / "state-sqlite")
        with gateway(stub, work, key, None, "sqlite") as gw:
            results["sqlite"] = measure(wrk, lua, [gw], key, args, failures, "sqlite")
        with redis_server(work) as url:
            keys = RedisKeyStore(RedisState(url))
            key, quota_key = keys.create("bench")[0], keys.create("metered", rpm=10**9, tpm=10**12)[0]
            with gateway(stub, work, key, url, "redis-a") as a:
                results["redis"] = measure(wrk, lua, [a], key, args, failures, "redis")
                results["redis_quota"] = measure(wrk, lua, [a], quota_key, args, failures, "redis_quota")
                with gateway(stub, work, key, url, "redis-b") as b:
                    # one and two gateways alternately (b idle in the first): the machine is shared, so pairs
                    # taken close together are compared, and the median pair is reported
                    pairs = [(measure(wrk, lua, [a], key, args, failures, "redis_one", latency=False),
                              measure(wrk, lua, [a, b], key, args, failures, "redis_x2", latency=False))
                             for _ in range(args.repeat)]
    ratios = sorted((two["throughput"]["rps"] / one["throughput"]["rps"], i) for i, (one, two) in enumerate(pairs))
    median = pairs[ratios[len(ratios) // 2][1]]
    results["redis_one"], results["redis_x2"] = median
    results["pairs_rps"] = [(one["throughput"]["rps"], two["throughput"]["rps"]) for one, two in pairs]
    one, two = results["redis_one"]["throughput"]["rps"], results["redis_x2"]["throughput"]["rps"]
    p50 = {k: results[k]["latency_c1"]["p50_ms"] for k in ("sqlite", "redis", "redis_quota")}
    per_cpu = {k: results[k]["throughput"]["requests_per_gateway_cpu_s"] for k in ("redis_one", "redis_x2")}
    summary = {
        "x2_rps_vs_one": round(two / one, 3),
        "x2_rps_vs_one_each_pair": [round(r, 3) for r, _ in ratios],
        # Two processes with a core each carry 2 x (their per-CPU-second rate) / (one process's rate at 1 core):
        "x2_capacity_per_core_vs_one": round(2 * per_cpu["redis_x2"] / per_cpu["redis_one"], 3),
        "redis_added_p50_ms": round(p50["redis"] - p50["sqlite"], 3),
        "quota_script_added_p50_ms": round(p50["redis_quota"] - p50["redis"], 3),
        "redis_rps_vs_sqlite": round(results["redis"]["throughput"]["rps"] / results["sqlite"]["throughput"]["rps"],
                                     3),
    }
    summary["goal_scale_met"] = summary["x2_rps_vs_one"] >= GOAL_SCALE
    summary["goal_scale_met_per_core"] = summary["x2_capacity_per_core_vs_one"] >= GOAL_SCALE
    summary["goal_added_p50_met"] = summary["redis_added_p50_ms"] <= GOAL_ADDED_P50_MS
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_at_end": os.getloadavg()},
        "setup": {"upstream": f"ebbtide stub engine, {CHUNKS} SSE chunks (one process, shared by every gateway)",
                  "client": "wrk -t1 per gateway (Lua POST), JSON mode, API keys on",
                  "latency_s": args.latency_s, "throughput_s": args.throughput_s,
                  "connections": args.connections},
        "goals": {"x2_rps_vs_one_min": GOAL_SCALE, "redis_added_p50_ms_max": GOAL_ADDED_P50_MS},
        "results": results,
        "summary": summary,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    if failures:
        sys.exit("FAILED: runs with non-2xx responses or socket errors:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
