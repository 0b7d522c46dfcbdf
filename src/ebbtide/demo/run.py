"""``ebbtide demo`` end to end: serve on the embedded pool with the compressed seed policy, calibrate its
first replica, drive the compressed day through the gateway, stop, then replay the same arrivals through
the twin.

Serve runs as a child process (its own session, stopped with SIGTERM and waited for), bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from ebbtide.demo.live import live_summary
from ebbtide.demo.plan import DemoPlan, demo_config
from ebbtide.demo.twin import run_twin
from ebbtide.loadtest.arrivals import Arrival
from ebbtide.loadtest.report import Outcome
from ebbtide.loadtest.runner import LoadOptions, run_load
from ebbtide.loadtest.runner import _body as _load_body  # the one place the load's prompt text is made
from ebbtide.serve.control.store import Store
from ebbtide.sim.calibrate import CalibrationPlan, run_calibration

__all__ = ["DemoError", "DemoResult", "load_prompt", "run_demo"]

READY_TIMEOUT_S = 240.0
# 8 samples per concurrency level: the twin fits each level's TTFT/TPOT spread to its p50 and p95.
CALIBRATION_REQUESTS_PER_LEVEL = 8


class DemoError(Exception):
    """The demo could not run; the message says which step and where the serve log is."""


@dataclass
class DemoResult:
    plan: dict[str, Any]
    live: dict[str, Any]
    twin: dict[str, Any]
    state_dir: str
    dashboard_url: str


def _get(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def _serve(config: Path, state_dir: Path, port: int, compress: float) -> Iterator[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-m", "ebbtide", "serve", "-c", str(config), "--port", str(port),
            "--state-dir", str(state_dir), "--time-scale", f"{compress:g}"]
    with (state_dir / "serve.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "COLUMNS": "200"})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, state_dir: Path) -> tuple[str, str]:
    """(admin token, base URL of the first ready replica)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"serve exited {proc.returncode}; see {state_dir / 'serve.log'}")
        with contextlib.suppress(OSError, ValueError, KeyError):
            token = (state_dir / "admin-token").read_text().strip()
            state = _get(url + "/admin/api/state", token)
            ready = [r for r in state["pools"]["default"]["replicas"] if r["state"] == "ready"]
            if ready:
                return token, str(ready[0]["url"])
        time.sleep(0.25)
    raise DemoError(f"no ready replica within {READY_TIMEOUT_S:g}s; see {state_dir / 'serve.log'}")


def load_prompt(opts: LoadOptions, plan: DemoPlan) -> str:
    """The prompt text the load client sends for the plan's requests (all have ``plan.prompt_tokens``):
    calibrating with it lets the engine's prompt cache reuse it as it does for the live traffic."""
    body = json.loads(_load_body(opts, Arrival(0.0, plan.prompt_tokens, plan.output_tokens)))
    return str(body["prompt"])


def _gateway_and_client_cpu_s(serve_pid: int) -> float:
    """CPU seconds of the gateway process and of this one (the load client), replicas excluded: what the live
    replicas had to share the machine with."""
    total = 0.0
    for pid in (serve_pid, os.getpid()):
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def _write_outcomes(path: Path, outcomes: Sequence[Outcome]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scheduled_s", "code", "latency_s", "ttft_s", "lateness_s", "engine_ms_per_token"])
        for o in outcomes:
            w.writerow([f"{o.scheduled_s:.4f}", o.code, "" if o.latency_s is None else f"{o.latency_s:.4f}",
                        "" if o.ttft_s is None else f"{o.ttft_s:.4f}", f"{o.lateness_s:.4f}",
                        "" if o.engine_ms_per_token is None else f"{o.engine_ms_per_token:.3f}"])


def run_demo(plan: DemoPlan, port: int, state_dir: Path, say: Callable[[str], None]) -> DemoResult:
    state_dir.mkdir(parents=True, exist_ok=True)
    began = time.time()
    cfg = demo_config(plan, began + plan.lead_s * plan.compress)
    config = state_dir / "demo.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    arrivals = plan.arrivals()
    say(f"demo: {plan.window()}, {len(arrivals)} requests; state {state_dir}")
    with _serve(config, state_dir, port, plan.compress) as proc:
        token, replica_url = _wait_ready(proc, url, state_dir)
        dashboard = f"{url}/dashboard?token={token}"
        say(f"dashboard: {dashboard}")
        say(f"calibrating the engine at {replica_url} (concurrency 1-4)")
        opts = LoadOptions(url=url, model="default", stream=True, endpoint="completions",
                           max_prompt_tokens=plan.prompt_tokens, max_output_tokens=plan.output_tokens,
                           request_timeout_s=60.0, drain_s=30.0, max_inflight=500)
        calibration = asyncio.run(run_calibration(CalibrationPlan(
            replica_url, max_concurrency=4, requests_per_level=CALIBRATION_REQUESTS_PER_LEVEL,
            prompt_tokens=plan.prompt_tokens, max_tokens=plan.output_tokens, model="default", timeout_s=60,
            prompt=load_prompt(opts, plan))))
        (state_dir / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
        wait_s = began + plan.lead_s - time.time()
        if wait_s > 0:
            time.sleep(wait_s)  # the schedule's crons were pinned to this moment of the policy clock
        feed = _get(url + "/dashboard/api/series?since=1e12", token)
        ready = sum(1 for r in _get(url + "/admin/api/state", token)["pools"]["default"]["replicas"]
                    if r["state"] == "ready")
        wall0 = time.time()
        policy0 = feed["policy_now"] + (wall0 - feed["now"]) * plan.compress
        say(f"traffic: {plan.duration_s / 60:g} wall minutes of open-loop load through the gateway")
        cpu0, clock0 = _gateway_and_client_cpu_s(proc.pid), time.monotonic()
        outcomes, _ = asyncio.run(run_load(arrivals, opts))
        side_cores = (_gateway_and_client_cpu_s(proc.pid) - cpu0) / (time.monotonic() - clock0)
    _write_outcomes(state_dir / "outcomes.csv", outcomes)
    wall1, policy1 = wall0 + plan.duration_s, policy0 + plan.duration_s * plan.compress
    store = Store(state_dir / "ebbtide.db")
    try:
        replicas = store.replicas("default")
        decisions = store.decisions(limit=1_000_000)
        events = store.events(limit=1_000_000)
    finally:
        store.close()
    slo = {"window_s": cfg.slo.window_s / plan.compress, "latency_p95_s": cfg.slo.latency_p95_s,
           "ttft_p95_s": cfg.slo.ttft_p95_s}
    live = live_summary(outcomes, replicas, decisions, events, wall_start_s=wall0, wall_end_s=wall1,
                        policy_start_s=policy0, policy_end_s=policy1, slo=slo)
    cold = [r["ready_at"] - r["requested_at"] for r in replicas if r["ready_at"] is not None]
    say(f"twin: the same {len(arrivals)} arrivals, calibration table, {len(cold)} measured cold start(s), "
        f"{side_cores:.2f} cores used by the gateway and the load client")
    twin = run_twin(cfg, calibration, cold, arrivals, compress=plan.compress, policy_start_epoch_s=policy0,
                    duration_s=plan.duration_s, initial_replicas=max(1, ready), work_dir=state_dir,
                    seed=plan.seed, prompt_ref_tokens=plan.prompt_tokens, reserved_cores=side_cores)
    twin["engine_ms_per_token_calibrated"] = calibration["levels"][0].get("engine_ms_per_token_p50")
    result = DemoResult(asdict(plan) | {"window": plan.window(), "wall_start_s": wall0,
                                        "policy_start_s": policy0, "initial_replicas": max(1, ready),
                                        "cold_starts_s": cold, "side_cores": side_cores},
                        live, twin, str(state_dir), dashboard.split("?")[0])
    (state_dir / "demo-results.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
