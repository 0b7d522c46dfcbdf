"""Replica crashes and controller exits: no request that had not started streaming fails; no engine outlives us."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from tests.gateway_harness import LoadLoop, engine_processes, gateway, wait_for, write_config


def test_sigkill_of_a_replica_under_load_is_replaced_without_failed_requests(
    tmp_path: Path, tiny_gguf_path: Path, free_port: int
) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 2, "max_replicas": 2, "policies": []})
    with gateway(cfg, tmp_path / "state", free_port) as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 30, "2 ready replicas")
        victim = gw.replicas("tiny")[0]
        with LoadLoop(gw.url, clients=4) as load:
            wait_for(lambda: len(load.codes) >= 5, 20, "some completed requests")
            os.kill(int(victim_pid(gw.state(), victim["id"])), signal.SIGKILL)
            wait_for(lambda: victim["id"] not in {r["id"] for r in gw.replicas("tiny")}
                     and len(gw.replicas("tiny")) == 2, 30, "a replacement replica")
            before = len(load.codes)
            wait_for(lambda: len(load.codes) >= before + 5, 20, "requests after the replacement")
        assert set(load.codes) == {200}, load.describe()
        kinds = [(e["replica_id"], e["kind"]) for e in gw.admin("/admin/api/events")[1]["events"]]
        assert (victim["id"], "failed") in kinds


def victim_pid(state: dict, replica_id: str) -> int:
    for r in state["pools"]["tiny"]["replicas"]:
        if r["id"] == replica_id:
            return int(r["url"] and _pid_of_port(int(r["url"].rsplit(":", 1)[1])))
    raise KeyError(replica_id)


def _pid_of_port(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return conn.pid
    raise LookupError(port)


def test_sigterm_stops_every_engine(tmp_path: Path, tiny_gguf_path: Path, free_port: int) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 2, "max_replicas": 2, "policies": []})
    state = tmp_path / "state"
    with gateway(cfg, state, free_port) as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 30, "2 ready replicas")
        assert len(engine_processes(state)) == 2
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(30) == 0
        assert engine_processes(state) == []


def test_sigkill_of_ebbtide_leaves_no_engine_behind(tmp_path: Path, tiny_gguf_path: Path, free_port: int) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 2, "max_replicas": 2, "policies": []},
                       replica={"orphan_grace_s": 3})
    state = tmp_path / "state"
    with gateway(cfg, state, free_port) as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 30, "2 ready replicas")
        workers = engine_processes(state)
        assert len(workers) == 2
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait(10)
        killed_at = time.monotonic()
        wait_for(lambda: engine_processes(state) == [], 15, "engines to stop after their lease lapsed")
        assert time.monotonic() - killed_at < 3 + 5
