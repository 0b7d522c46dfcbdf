"""Scale to zero with held requests and honest 503s; restart adoption of live replicas (real llama.cpp)."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

from ebbtide.providers.local import free_port
from tests.gateway_harness import engine_processes, gateway, http_json, wait_for, write_config

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def zero_config(path: Path, model: Path) -> Path:
    return write_config(
        path, model,
        replica={"cold_start_estimate_s": 5},
        scaling={"min_replicas": 0, "max_replicas": 1, "scale_to_zero_after_s": 30, "scale_in_cooldown_s": 10,
                 "policies": [{"kind": "queue_depth", "target": 1, "scale_down_stabilization_s": 10}]},
    )


def test_request_at_zero_is_held_and_answered_then_short_deadline_gets_503(tmp_path: Path,
                                                                           tiny_gguf_path: Path) -> None:
    cfg = zero_config(tmp_path / "c.yaml", tiny_gguf_path)
    with gateway(cfg, tmp_path / "state", free_port(), "--time-scale", "10", ready_pool=None) as gw:
        wait_for(lambda: gw.state()["pools"]["tiny"]["desired"] == 0, 10, "an idle pool at zero")
        assert engine_processes(gw.state_dir) == []
        body = json.dumps({**CHAT, "stream": True}).encode()
        req = urllib.request.Request(gw.url + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as resp:
            first_line = resp.readline()
            first_byte_s = time.monotonic() - t0
            rest = resp.read()
        assert resp.status == 200 and first_line.startswith(b"data: ")
        assert b"[DONE]" in rest
        print(json.dumps({"cold_start_first_byte_s": round(first_byte_s, 3)}))
        events = [e["kind"] for e in gw.admin("/admin/api/events")[1]["events"]]
        assert [k for k in events if k != "phases"][:3] == ["requested", "starting", "ready"]
        assert events.index("phases") < events.index("ready")  # the start is timed before it takes traffic

        wait_for(lambda: gw.state()["pools"]["tiny"]["desired"] == 0
                 and not [r for r in gw.state()["pools"]["tiny"]["replicas"] if r["state"] in ("ready", "draining")],
                 30, "scale back to zero after idle")
        t0 = time.monotonic()
        status, err = http_json(gw.url + "/v1/chat/completions", CHAT, {"X-Ebbtide-Deadline-S": "0.5"})
        assert time.monotonic() - t0 < 2.0, "a hopeless request must be refused at once, not held"
        assert status == 503 and err["error"]["code"] == "cold_start"
        assert "deadline" in err["error"]["message"]


def test_sigkill_and_restart_adopts_live_replicas(tmp_path: Path, tiny_gguf_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path, replica={"orphan_grace_s": 20},
                       scaling={"min_replicas": 2, "max_replicas": 2, "policies": []})
    state = tmp_path / "state"
    with gateway(cfg, state, free_port()) as first:
        wait_for(lambda: len(first.replicas("tiny")) == 2, 30, "2 ready replicas")
        before = sorted(p.pid for p in engine_processes(state))
        ids_before = sorted(r["id"] for r in first.replicas("tiny"))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        assert sorted(p.pid for p in engine_processes(state)) == before, "replicas must survive within the grace"
        with gateway(cfg, state, free_port()) as second:
            wait_for(lambda: len(second.replicas("tiny")) == 2, 20, "adopted replicas ready")
            assert sorted(r["id"] for r in second.replicas("tiny")) == ids_before
            assert sorted(p.pid for p in engine_processes(state)) == before, "no duplicates, same processes"
            kinds = [e["kind"] for e in second.admin("/admin/api/events")[1]["events"]]
            assert kinds.count("adopted") == 2
            status, _ = http_json(second.url + "/v1/chat/completions", CHAT)
            assert status == 200
            second.proc.send_signal(signal.SIGTERM)
            assert second.proc.wait(30) == 0
        assert engine_processes(state) == [], "the adopting controller stops what it adopted"
