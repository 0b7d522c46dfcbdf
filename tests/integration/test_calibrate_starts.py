"""`ebbtide calibrate --cold-starts N` times real starts of a pool's llama.cpp replica, phase by phase, and gives
the twin a cold-start block made of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from ebbtide.config.sim import SimSpec


def test_calibrate_records_the_phases_of_real_starts(tmp_path: Path, tiny_gguf_path: Path) -> None:
    cfg = tmp_path / "ebbtide.yaml"
    cfg.write_text(yaml.safe_dump({"pools": [{"name": "tiny", "engine": {
        "kind": "llamacpp", "model": str(tiny_gguf_path), "slots": 1, "threads": 1, "ctx_per_slot": 256}}]}))
    out = tmp_path / "starts.json"
    done = subprocess.run([sys.executable, "-m", "ebbtide", "calibrate", "--cold-starts", "2", "-c", str(cfg),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())
    assert table["pool"] == "tiny" and len(table["starts"]) == 2
    for start in table["starts"]:
        assert {"provision", "process_start", "engine_import", "weights_loaded", "health_ok", "first_token"} <= set(
            start), start
        assert all(v >= 0 for v in start.values())
    assert table["total_median_s"] > 0
    spec = SimSpec.model_validate({"cold_start": table["sim_cold_start"]})  # pastes into a pool's sim: block
    assert spec.cold_start.kind == "empirical" and len(table["sim_cold_start"]["samples_s"]) == 2


def test_calibrate_cold_starts_needs_a_config(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ebbtide", "calibrate", "--cold-starts", "1", "--out",
                           str(tmp_path / "x.json")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "--config" in done.stdout + done.stderr
