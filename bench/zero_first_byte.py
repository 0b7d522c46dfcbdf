"""Cold start from zero: a streaming request arriving at a pool with no replica → its first byte, through
`ebbtide serve` on the embedded model (the request is held while the replica starts).

Usage: ``.venv/bin/python bench/zero_first_byte.py [--reps 3]`` → bench/results/zero_first_byte.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "zero_first_byte.json"
CONFIG = """pools:
  - name: default
    engine: {kind: llamacpp, model: default, slots: 4, threads: 2, args: ["n_predict=512"]}
    replica: {cold_start_estimate_s: 30}
    scaling: {min_replicas: 0, max_replicas: 1, scale_to_zero_after_s: 5, scale_in_cooldown_s: 5,
              policies: [{kind: queue_depth, target: 1, scale_down_stabilization_s: 5}]}
"""
BODY = json.dumps({"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
                   "stream": True}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin(url: str, token: str) -> dict[str, object]:
    req = urllib.request.Request(url + "/admin/api/state", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def wait(predicate: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise TimeoutError


def live_replicas(state: dict[str, object]) -> int:
    pool = state["pools"]["default"]  # type: ignore[index]
    return sum(1 for r in pool["replicas"] if r["state"] in ("requested", "starting", "ready", "draining"))


def main(reps: int) -> dict[str, object]:
    port, tmp = free_port(), Path(tempfile.mkdtemp())
    (tmp / "c.yaml").write_text(CONFIG)
    proc = subprocess.Popen([sys.executable, "-m", "ebbtide", "serve", "-c", str(tmp / "c.yaml"), "--port",
                             str(port), "--state-dir", str(tmp / "state")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    firsts: list[float] = []
    try:
        wait(lambda: (tmp / "state" / "admin-token").exists() and urllib.request.urlopen(url + "/healthz"), 60)
        token = (tmp / "state" / "admin-token").read_text().strip()
        for _ in range(reps):
            wait(lambda: live_replicas(admin(url, token)) == 0, 120)
            req = urllib.request.Request(url + "/v1/chat/completions", data=BODY,
                                         headers={"Content-Type": "application/json"})
            t0 = time.monotonic()
            with urllib.request.urlopen(req, timeout=300) as resp:
                resp.readline()
                firsts.append(time.monotonic() - t0)
                resp.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    return {"benchmark": "zero_first_byte", "model": "embedded gemma3-270m Q4_K_M", "reps": reps,
            "first_byte_s": firsts, "median_s": statistics.median(firsts)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    result = main(parser.parse_args().reps)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
