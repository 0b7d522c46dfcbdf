"""`ebbtide demo --minutes 3` end to end: real replicas of the embedded model, the twin, the comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway_harness import engine_processes

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_demo_three_minutes_prints_live_beside_twin(tmp_path: Path, free_port: int) -> None:
    state = tmp_path / "demo"
    argv = [sys.executable, "-m", "ebbtide", "demo", "--minutes", "3", "--port", str(free_port),
            "--state-dir", str(state)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=540, check=False,
                              env={**os.environ, "COLUMNS": "160"})
    finally:
        leftovers = engine_processes(state)
        for proc in leftovers:
            proc.kill()
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"http://127.0.0.1:{free_port}/dashboard?token=" in out
    for row in ("live vs twin", "latency P95", "TTFT P95", "SLO attainment", "replica-seconds", "cold starts",
                "scaling decisions"):
        assert row in out, row
    assert leftovers == []
    result = json.loads((state / "demo-results.json").read_text())
    live, twin = result["live"], result["twin"]
    assert live["requests"] == twin["requests"] > 50
    assert live["completed"] >= 0.9 * live["requests"]
    assert live["replica_seconds"] > 0 and twin["replica_seconds"] > 0
    assert live["decisions"] >= 1  # the 08:45 pre-warm falls inside 08:30-11:30
    # Same controller, same arrivals per policy minute, measured cold starts: the fleet's size must agree.
    assert twin["decisions"] == live["decisions"] and twin["cold_starts"] == live["cold_starts"]
    assert abs(twin["replica_seconds"] - live["replica_seconds"]) <= 0.15 * live["replica_seconds"]
    assert (state / "series.jsonl").stat().st_size > 0 and (state / "calibration.json").is_file()
