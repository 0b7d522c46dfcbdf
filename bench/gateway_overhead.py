"""Gateway overhead: what ebbtide adds per request, vs the bare stub engine and LiteLLM's proxy, in one run.

Usage: ``.venv/bin/python bench/gateway_overhead.py [--latency-s 5] [--throughput-s 8] [--connections 32]
[--skip-litellm] [--auth keys|none]`` → bench/results/gateway_overhead.json.

The upstream is ebbtide's stub engine (``ebbtide.testing.stub_engine``: canned answers, 16 SSE chunks), so
every millisecond measured is the proxy's. wrk (Debian package; installed with apt-get when missing and root)
sends a fixed POST body from a Lua script: a Python client would burn ~5× the CPU of the servers it measures.
For each target (direct, ebbtide, LiteLLM) and mode (JSON, stream):
- latency: one connection for ``--latency-s`` → p50/p99; "added" = target − direct;
- throughput: ``--connections`` connections for ``--throughput-s`` → requests/s.
Every wrk run (warm-ups too) must report 0 "Non-2xx or 3xx responses" and 0 "Socket errors": otherwise the
numbers measure error paths, so the run still writes its JSON (``"failures"``) and exits 1 naming each bad run.
ebbtide runs with API keys on (``--auth keys``, the default): a key is created in its state dir and wrk sends
``Authorization: Bearer``, as LiteLLM gets its master key, so the per-request key check is in the measurement.
LiteLLM ``litellm[proxy]>=1.108,<1.109`` lives in bench/.venv-litellm (created here; never a project
dependency) and runs offline (local cost map, no telemetry) with 1 worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ebbtide.serve.gateway.keys import KeyStore
from ebbtide.testing.stub_engine import spawn_stub

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gateway_overhead.json"
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_SPEC = "litellm[proxy]>=1.108,<1.109"
CHUNKS = 16
GOAL_ADDED_P50_MS = 0.5
GOAL_RPS_VS_LITELLM = 3.0
# wrk prints these two lines only when they are not zero (wrk counts HTTP status >= 400 as "Non-2xx or 3xx").
NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")

LUA = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"mean_us":%.1f,"max_us":%.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, env=env, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
        return shutil.which("wrk") or sys.exit("wrk still missing after apt-get install")
    sys.exit("wrk is needed: `sudo apt-get install wrk` (Debian/Ubuntu) or build it from its sources")


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"creating {LITELLM_VENV} with {LITELLM_SPEC} (a few minutes, once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)  # older pips cannot resolve litellm's extras
    subprocess.run([*pip, LITELLM_SPEC], check=True)
    return exe


def wait_ok(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited {proc.returncode}")
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
                if resp.status == 200:
                    return
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not answering 200 within {timeout_s} s ({last})")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


def create_key(state_dir: Path) -> str:
    """A fresh API key in ``state_dir``'s key store (what `ebbtide keys create` does): the gateway then runs keys."""
    store = KeyStore(state_dir / "ebbtide.db")
    try:
        return store.create("bench")[0]
    finally:
        store.close()


@contextlib.contextmanager
def ebbtide_gateway(stub_url: str, workdir: Path, key: str, auth: str) -> Iterator[str]:
    port = free_port()
    cfg = {"pools": [{
        "name": "stub",
        "engine": {"kind": "openai", "url": stub_url + "/v1", "slots": 1024},
        "replica": {"health_interval_s": 1},
        "scaling": {"min_replicas": 1, "max_replicas": 1},
    }], "gateway": {"max_queue": 10_000, "auth": auth}}
    (workdir / "ebbtide.yaml").write_text(yaml.safe_dump(cfg))
    log = open(workdir / "ebbtide.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebbtide", "serve", "-c", str(workdir / "ebbtide.yaml"), "--port", str(port),
         "--state-dir", str(workdir / "state")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(url + "/v1/chat/completions", body(False), {"Authorization": f"Bearer {key}"} if key else {}, 60,
                proc)
        logged = (workdir / "ebbtide.log").read_text(errors="replace")
        if f"auth: {auth} (" not in logged:
            raise RuntimeError(f"ebbtide did not log 'auth: {auth}' at startup:\n{logged}")
        yield url
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def litellm_proxy(stub_url: str, workdir: Path, key: str) -> Iterator[str]:
    exe = ensure_litellm()
    port = free_port()
    cfg = {"model_list": [{"model_name": "stub", "litellm_params": {
        "model": "openai/stub", "api_base": stub_url + "/v1", "api_key": "unused"}}]}
    (workdir / "litellm.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY_DISABLED": "true",
           "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": key, "NO_DOCKER": "1"}
    log = open(workdir / "litellm.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [str(exe), "--config", str(workdir / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(url + "/v1/chat/completions", body(False), {"Authorization": f"Bearer {key}"}, 180, proc)
        yield url
    finally:
        stop(proc)
        log.close()


def body(stream: bool) -> bytes:
    return json.dumps({"model": "stub", "messages": [{"role": "user", "content": "Say hi."}],
                       "max_tokens": CHUNKS, "stream": stream}).encode()


def run_wrk(
    wrk: str, lua: Path, url: str, payload: bytes, key: str, connections: int, seconds: float
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_BODY": payload.decode(), "BENCH_KEY": key}
    argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(lua), url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("WRKJSON "))
    non2xx = NON_2XX_RE.search(out.stdout)
    sockets = SOCKET_RE.search(out.stdout)
    printed = {"non2xx": int(non2xx.group(1)) if non2xx else 0,
               **dict(zip(("connect", "read", "write", "timeout"),
                          (int(g) for g in sockets.groups()) if sockets else (0, 0, 0, 0), strict=True))}
    if any(printed[k] != r[k] for k in printed):  # two views of one count: a mismatch means the parse is wrong
        raise RuntimeError(f"wrk's printed errors {printed} differ from its Lua summary: {out.stdout}")
    return {
        "requests": r["requests"],
        "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": round(r["p50_us"] / 1000, 3),
        "p90_ms": round(r["p90_us"] / 1000, 3),
        "p99_ms": round(r["p99_us"] / 1000, 3),
        "errors": {k: r[k] for k in ("non2xx", "connect", "read", "write", "timeout") if r[k]},
    }


def measure(
    wrk: str, lua: Path, target: str, base: str, key: str, args: argparse.Namespace, failures: list[str]
) -> dict[str, Any]:
    """Latency and throughput runs per mode; each run with a non-2xx or socket error is added to ``failures``."""
    url = base + "/v1/chat/completions"
    out: dict[str, Any] = {}
    for mode, stream in (("json", False), ("stream", True)):
        payload = body(stream)
        runs = {"warm_up": run_wrk(wrk, lua, url, payload, key, 4, 1)}  # connection pools, caches
        runs["latency_c1"] = run_wrk(wrk, lua, url, payload, key, 1, args.latency_s)
        runs["throughput"] = run_wrk(wrk, lua, url, payload, key, args.connections, args.throughput_s)
        failures += [f"{target} {mode} {name}: {run['errors']} in {run['requests']} requests"
                     for name, run in runs.items() if run["errors"]]
        out[mode] = {k: v for k, v in runs.items() if k != "warm_up"}
        print(f"  {mode}: {json.dumps(out[mode])}", file=sys.stderr)
    return out


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    direct, ebb, lite = results["direct"], results["ebbtide"], results.get("litellm")
    for mode in ("json", "stream"):
        d_lat, e_lat = direct[mode]["latency_c1"], ebb[mode]["latency_c1"]
        e_rps = ebb[mode]["throughput"]["rps"]
        s = {
            "ebbtide_added_p50_ms": round(e_lat["p50_ms"] - d_lat["p50_ms"], 3),
            "ebbtide_added_p99_ms": round(e_lat["p99_ms"] - d_lat["p99_ms"], 3),
            "ebbtide_rps_vs_direct": round(e_rps / direct[mode]["throughput"]["rps"], 3),
        }
        if lite is not None:
            l_lat = lite[mode]["latency_c1"]
            s["litellm_added_p50_ms"] = round(l_lat["p50_ms"] - d_lat["p50_ms"], 3)
            s["litellm_added_p99_ms"] = round(l_lat["p99_ms"] - d_lat["p99_ms"], 3)
            s["ebbtide_rps_vs_litellm"] = round(e_rps / lite[mode]["throughput"]["rps"], 2)
            s["goal_rps_3x_litellm_met"] = s["ebbtide_rps_vs_litellm"] >= GOAL_RPS_VS_LITELLM
        s["goal_added_p50_met"] = s["ebbtide_added_p50_ms"] <= GOAL_ADDED_P50_MS
        summary[mode] = s
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-s", type=float, default=5.0)
    parser.add_argument("--throughput-s", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-litellm", action="store_true", help="Only direct vs ebbtide.")
    parser.add_argument("--auth", choices=("keys", "none"), default="keys",
                        help="ebbtide's gateway.auth: keys (a key is created, wrk sends it) or none (open).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    wrk = ensure_wrk()
    if not args.skip_litellm:
        ensure_litellm()
    results: dict[str, Any] = {}
    failures: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="ebbtide-bench-") as tmp,
        spawn_stub(free_port(), chunks=CHUNKS) as stub,
    ):
        work = Path(tmp)
        lua = work / "post.lua"
        lua.write_text(LUA)
        print(f"direct → stub {stub}", file=sys.stderr)
        results["direct"] = measure(wrk, lua, "direct", stub, "", args, failures)
        ebb_key = create_key(work / "state") if args.auth == "keys" else ""
        with ebbtide_gateway(stub, work, ebb_key, args.auth) as gw:
            print(f"ebbtide (auth {args.auth}) → {gw}", file=sys.stderr)
            results["ebbtide"] = measure(wrk, lua, "ebbtide", gw, ebb_key, args, failures)
        if not args.skip_litellm:
            key = "sk-bench-" + secrets.token_hex(16)
            with litellm_proxy(stub, work, key) as lite:
                print(f"LiteLLM → {lite}", file=sys.stderr)
                results["litellm"] = measure(wrk, lua, "litellm", lite, key, args, failures)
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "setup": {"upstream": f"ebbtide stub engine, {CHUNKS} SSE chunks", "client": "wrk -t1 (Lua POST)",
                  "latency_connections": 1, "throughput_connections": args.connections,
                  "latency_s": args.latency_s, "throughput_s": args.throughput_s, "litellm": LITELLM_SPEC,
                  "ebbtide_auth": args.auth, "litellm_auth": "master key"},
        "goals": {"added_p50_ms_max": GOAL_ADDED_P50_MS, "rps_vs_litellm_min": GOAL_RPS_VS_LITELLM},
        "results": results,
        "summary": summarize(results),
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["summary"], indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    if failures:
        sys.exit("FAILED: runs with non-2xx responses or socket errors, so their numbers are not the proxy's "
                 "normal path:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
