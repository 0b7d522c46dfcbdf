"""A hot standby, live: `ebbtide serve` with real llama.cpp replicas parks one replica paused (SIGSTOP), keeps it
through its lease and health checks, and serves a scale-out's first request from it (SIGCONT) before any cold
start; a gateway SIGKILLed while a replica is paused leaves no engine behind. Orders of events, not times."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ebbtide.providers.local import free_port
from tests.gateway_harness import engine_processes, gateway, http_json, wait_for, write_config

pytestmark = pytest.mark.slow
GRACE_S = 4.0


def standby_config(tmp_path: Path, model: Path) -> Path:
    return write_config(
        tmp_path / "ebbtide.yaml", model,
        replica={"orphan_grace_s": GRACE_S},
        scaling={"min_replicas": 0, "max_replicas": 2, "scale_to_zero_after_s": 600,
                 "standby": {"tier": "hot", "count": 1}, "policies": [{"kind": "queue_depth", "target": 1}]},
    )  # fmt: skip


def parked(gw: Any) -> dict[str, Any] | None:
    found = gw.replicas("tiny", "standby")
    return found[0] if found else None


def events(gw: Any) -> list[dict[str, Any]]:
    status, body = gw.admin("/admin/api/events")
    assert status == 200, body
    return body["events"]  # type: ignore[no-any-return]


def worker_of(state_dir: Path, replica_id: str) -> psutil.Process:
    procs = [p for p in engine_processes(state_dir) if any(replica_id in part for part in p.cmdline())]
    assert len(procs) == 1, procs
    return procs[0]


def test_a_scale_out_is_served_by_the_woken_hot_standby_before_any_cold_start(
    tmp_path: Path, tiny_gguf_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "state"
    with gateway(standby_config(tmp_path, tiny_gguf_path), state, port, "--auth", "none", ready_pool=None) as gw:
        spare = wait_for(lambda: parked(gw), 60, "a parked standby replica")
        rid = spare["id"]
        worker = worker_of(state, rid)
        assert worker.status() == psutil.STATUS_STOPPED
        lease = state / "leases" / rid
        parked_at = time.time()
        # Its lease outlives the orphan grace while it is stopped (the controller renews it; the worker could not),
        # and health checks leave it be: still parked, still stopped.
        wait_for(lambda: lease.stat().st_mtime > parked_at + GRACE_S, 60, "the lease renewed past the grace")
        still = parked(gw)
        assert still is not None and still["id"] == rid
        assert worker.is_running() and worker.status() == psutil.STATUS_STOPPED

        status, reply = http_json(f"{gw.url}/v1/chat/completions",
                                  {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                                  timeout=60)  # fmt: skip
        assert status == 200 and reply["usage"]["completion_tokens"] >= 1

        log = events(gw)
        mine = [(e["kind"], e["detail"]) for e in log if e["replica_id"] == rid]
        kinds = [k for k, _ in mine]
        assert kinds.index("standby") < kinds.index("promoted") < kinds.index("ready"), mine
        assert "woken from hot standby" in dict(mine)["ready"]
        assert any(k == "phases" and d.startswith("wake-hot") for k, d in mine), mine
        # No other replica was ready before the woken one: the request could only have been served by it.
        ready = [e["replica_id"] for e in log if e["kind"] == "ready"]
        assert ready[0] == rid, ready
        promoted_at = next(i for i, e in enumerate(log) if e["kind"] == "promoted" and e["replica_id"] == rid)
        # ...and the reserve is refilled in the background, after the promotion.
        assert any(e["kind"] == "requested" and "standby" in e["detail"] for e in log[promoted_at:]), log
        assert worker.status() != psutil.STATUS_STOPPED

        # `ebbtide status` shows the timed starts: the standby's own start (every phase) and its wake.
        status_cmd = [sys.executable, "-m", "ebbtide", "status", "--url", gw.url, "--state-dir", str(state)]
        as_json = json.loads(subprocess.run([*status_cmd, "--json"], capture_output=True, text=True, timeout=30,
                                            check=True).stdout)  # fmt: skip
        starts = {(s["replica_id"], s["kind"]): s["phases"] for s in as_json["pools"]["tiny"]["starts"]}
        loaded = starts[(rid, "standby-hot")]
        assert {"provision", "process_start", "engine_import", "weights_loaded", "health_ok", "first_token"} <= set(
            loaded), loaded
        assert set(starts[(rid, "wake-hot")]) == {"wake"}
        text = subprocess.run([*status_cmd], capture_output=True, text=True, timeout=30, check=True,
                              env={**os.environ, "COLUMNS": "250"}).stdout
        assert "replica starts, seconds per phase" in text and "wake-hot" in text and "standby-hot" in text, text


def test_a_paused_replica_dies_with_its_lease_when_the_gateway_is_killed(tmp_path: Path, tiny_gguf_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    with gateway(standby_config(tmp_path, tiny_gguf_path), state, port, "--auth", "none", ready_pool=None) as gw:
        rid = wait_for(lambda: parked(gw), 60, "a parked standby replica")["id"]
        worker = worker_of(state, rid)
        assert worker.status() == psutil.STATUS_STOPPED
        os.killpg(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(10)
        # The stopped worker cannot see its lease lapse; its pause_watch must end it.
        wait_for(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, 60,
                 "the paused worker gone after its lease lapsed")
