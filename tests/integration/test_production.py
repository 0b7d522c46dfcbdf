"""Production gateway features on real llama.cpp pools: keys and quotas, fallback pool, spot notice under load."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from ebbtide.providers.local import free_port
from tests.gateway_harness import LoadLoop, gateway, http_json, wait_for, write_config

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def ebbtide(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "ebbtide", *args], capture_output=True, text=True, timeout=60,
                          check=True).stdout


def test_keys_quota_and_revocation_within_a_second(tmp_path: Path, tiny_gguf_path: Path) -> None:
    state = tmp_path / "state"
    key = json.loads(ebbtide("keys", "create", "--tenant", "acme", "--rpm", "3", "--state-dir", str(state),
                             "--json"))["key"]
    other = json.loads(ebbtide("keys", "create", "--tenant", "globex", "--state-dir", str(state), "--json"))
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    with gateway(cfg, state, free_port()) as gw:
        url = gw.url + "/v1/chat/completions"
        status, body = http_json(url, CHAT)
        assert status == 401 and body["error"]["code"] == "missing_api_key"
        assert http_json(url, CHAT, {"Authorization": "Bearer ebt_000000000000_nope"})[0] == 401
        auth = {"Authorization": f"Bearer {key}"}
        assert [http_json(url, CHAT, auth)[0] for _ in range(3)] == [200, 200, 200]
        status, body = http_json(url, CHAT, auth)
        assert status == 429 and body["error"]["code"] == "quota_exceeded"
        assert http_json(url, CHAT, {"Authorization": f"Bearer {other['key']}"})[0] == 200, "quotas are per tenant"

        ebbtide("keys", "revoke", other["key_id"], "--state-dir", str(state))
        revoked_at = time.monotonic()
        wait_for(lambda: http_json(url, CHAT, {"Authorization": f"Bearer {other['key']}"})[0] == 401, 3,
                 "the revoked key to be refused")
        assert time.monotonic() - revoked_at <= 1.3


def test_non_loopback_bind_without_keys_refuses(tmp_path: Path, tiny_gguf_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    done = subprocess.run([sys.executable, "-m", "ebbtide", "serve", "-c", str(cfg), "--host", "0.0.0.0",
                           "--port", str(free_port()), "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--insecure" in done.stdout + done.stderr


def test_overflow_goes_to_the_fallback_pool(tmp_path: Path, tiny_gguf_path: Path) -> None:
    engine = {"kind": "llamacpp", "model": str(tiny_gguf_path), "threads": 1}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "slo": {"latency_p95_s": 0.3},
        "pools": [
            {"name": "big", "engine": {**engine, "slots": 1, "ctx_per_slot": 4096}, "fallback": "small",
             "replica": {"cold_start_estimate_s": 300, "health_interval_s": 0.5},
             "scaling": {"min_replicas": 1, "max_replicas": 1, "policies": []}},
            {"name": "small", "engine": {**engine, "slots": 4, "ctx_per_slot": 512},
             "replica": {"health_interval_s": 0.5}, "scaling": {"min_replicas": 1, "max_replicas": 1, "policies": []}},
        ],
    }))
    with gateway(cfg, tmp_path / "state", free_port(), ready_pool="big") as gw:
        wait_for(lambda: gw.replicas("small"), 30, "the fallback pool ready")
        served_by: list[str] = []

        def call(max_tokens: int) -> None:
            body = json.dumps({"model": "big", "messages": [{"role": "user", "content": "go"}],
                               "max_tokens": max_tokens}).encode()
            req = urllib.request.Request(gw.url + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                assert resp.status == 200
                served_by.append(resp.headers["X-Ebbtide-Served-By"])

        call(3000)
        served_by.clear()
        long_one = threading.Thread(target=call, args=(3000,))
        long_one.start()
        wait_for(lambda: gw.replicas("big")[0]["inflight"] == 1, 10, "the big pool's only slot busy")
        for _ in range(3):
            call(4)
        long_one.join(60)
        assert served_by.count("small") == 3 and served_by.count("big") == 1, served_by
        metrics = urllib.request.urlopen(gw.url + "/metrics", timeout=10).read().decode()
        assert 'ebbtide_fallbacks_total{fallback="small",pool="big"} 3.0' in metrics


def test_spot_notice_under_load_fails_no_request(tmp_path: Path, tiny_gguf_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       replica={"spot": {"hourly_usd": 0.3, "notice_s": 2}, "hourly_usd": 1.0},
                       scaling={"min_replicas": 2, "max_replicas": 2, "policies": []})
    with gateway(cfg, tmp_path / "state", free_port()) as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 30, "2 ready spot replicas")
        victim = gw.replicas("tiny")[0]
        assert victim["spot"] is True
        with LoadLoop(gw.url, clients=4) as load:
            wait_for(lambda: len(load.codes) >= 5, 20, "load running")
            (gw.state_dir / "notices").mkdir(exist_ok=True)
            (gw.state_dir / "notices" / victim["id"]).write_text("2")
            wait_for(lambda: victim["id"] not in {r["id"] for r in gw.state()["pools"]["tiny"]["replicas"]
                                                  if r["state"] in ("ready", "draining")}
                     and len(gw.replicas("tiny")) == 2, 30, "the replacement serving, the victim gone")
            before = len(load.codes)
            wait_for(lambda: len(load.codes) >= before + 5, 20, "requests after the preemption")
        assert set(load.codes) == {200}, load.describe()
        kinds = [(e["replica_id"], e["kind"]) for e in gw.admin("/admin/api/events")[1]["events"]]
        assert (victim["id"], "preempted") in kinds and (victim["id"], "stopped") in kinds
        status, body = gw.admin(f"/admin/api/replicas/{gw.replicas('tiny')[0]['id']}/preempt", {"notice_s": 1})
        assert status == 200 and body["preempted"] is True


def test_scale_in_under_load_drains_without_a_single_5xx(tmp_path: Path, tiny_gguf_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path, engine={"slots": 1},
                       scaling={"min_replicas": 2, "max_replicas": 2, "policies": []})
    with gateway(cfg, tmp_path / "state", free_port()) as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 30, "2 ready replicas")
        with LoadLoop(gw.url, clients=4) as load:
            wait_for(lambda: len(load.codes) >= 10, 20, "load running")
            status, _ = gw.admin("/admin/api/pools/tiny/scale", {"replicas": 1})
            assert status == 200
            wait_for(lambda: len(gw.replicas("tiny")) == 1 and not gw.replicas("tiny", "draining"), 30,
                     "the drained replica stopped")
            before = len(load.codes)
            wait_for(lambda: len(load.codes) >= before + 10, 20, "requests after the scale-in")
        assert set(load.codes) == {200}, load.describe()
        drained = [e for e in gw.admin("/admin/api/events")[1]["events"] if e["kind"] == "stopped"]
        assert drained and all("still in flight" not in e["detail"] for e in drained)
