"""Rollouts on real replicas: a healthy canary is promoted; a slow candidate is rolled back; shadow mirrors."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebbtide.providers.local import free_port
from tests.gateway_harness import LoadLoop, gateway, wait_for, write_config

FAST_ROLLBACK = {"window_s": 30, "min_requests": 5, "max_error_rate_delta": 0.05, "max_p95_ratio": 3.0}


@pytest.fixture
def slow_stub() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ebbtide.testing.stub_engine", "--port", str(port),
                             "--delay-ms", "1500"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def rollout_events(gw: object) -> list[str]:
    return [e["detail"] for e in gw.admin("/admin/api/events")[1]["events"]  # type: ignore[attr-defined]
            if e["kind"] in ("rollout", "variant")]


def test_healthy_canary_is_promoted_without_failed_requests(tmp_path: Path, tiny_gguf_path: Path) -> None:
    candidate = {"engine": {"kind": "llamacpp", "model": str(tiny_gguf_path), "slots": 2, "threads": 1,
                            "ctx_per_slot": 256}}
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 1, "max_replicas": 1, "policies": []},
                       rollout={"mode": "canary", "steps": [25, 100], "step_interval_s": 2,
                                "rollback": FAST_ROLLBACK, "candidate": candidate})
    with gateway(cfg, tmp_path / "state", free_port()) as gw:
        with LoadLoop(gw.url, clients=3) as load:
            wait_for(lambda: "promote candidate" in rollout_events(gw), 45, "promotion")
            wait_for(lambda: {r["variant"] for r in gw.replicas("tiny")} == {"candidate"}
                     and not gw.replicas("tiny", "draining"), 30, "only candidate replicas serving")
        assert set(load.codes) == {200}, load.describe()
        events = rollout_events(gw)
        assert events[0] == "canary of candidate started" and any("step 2/2" in e for e in events)


def test_slow_candidate_is_rolled_back(tmp_path: Path, tiny_gguf_path: Path, slow_stub: str) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 1, "max_replicas": 1, "policies": []},
                       rollout={"mode": "canary", "steps": [50, 100], "step_interval_s": 30,
                                "rollback": FAST_ROLLBACK,
                                "candidate": {"engine": {"kind": "openai", "url": slow_stub, "slots": 4}}})
    with gateway(cfg, tmp_path / "state", free_port()) as gw:
        with LoadLoop(gw.url, clients=3) as load:
            wait_for(lambda: any(e.startswith("rollback: candidate P95") for e in rollout_events(gw)), 45,
                     "an automatic rollback")
            wait_for(lambda: all(r["variant"] == "default" for r in gw.state()["pools"]["tiny"]["replicas"]
                                 if r["state"] in ("ready", "starting", "draining")), 20, "candidate drained")
        assert set(load.codes) == {200}, load.describe()


def test_shadow_mirrors_without_touching_answers(tmp_path: Path, tiny_gguf_path: Path, slow_stub: str) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 1, "max_replicas": 1, "policies": []},
                       rollout={"mode": "shadow", "percent": 100, "step_interval_s": 600,
                                "rollback": {**FAST_ROLLBACK, "max_p95_ratio": 1000},
                                "candidate": {"engine": {"kind": "openai", "url": slow_stub, "slots": 4}}})
    with gateway(cfg, tmp_path / "state", free_port()) as gw:
        wait_for(lambda: gw.replicas("tiny", "ready") and any(r["variant"] == "candidate"
                                                              for r in gw.replicas("tiny")), 30, "both arms")
        with LoadLoop(gw.url, clients=2) as load:
            wait_for(lambda: len(load.codes) >= 10, 20, "some answers")
        assert set(load.codes) == {200}, load.describe()
        rollout = wait_for(lambda: (s := gw.state()["pools"]["tiny"]["rollout"])["requests"]["candidate"] >= 5
                           and s, 20, "mirrored requests answered by the candidate")
        assert rollout["mode"] == "shadow" and rollout["traffic_percent"] == 0
        assert rollout["requests"]["baseline"] >= len(load.codes), "every client answer came from the baseline"


def test_blue_green_holds_blue_until_green_is_promoted(tmp_path: Path, tiny_gguf_path: Path) -> None:
    green = {"engine": {"kind": "llamacpp", "model": str(tiny_gguf_path), "slots": 2, "threads": 1,
                        "ctx_per_slot": 256}}
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path,
                       scaling={"min_replicas": 1, "max_replicas": 1, "policies": []},
                       rollout={"mode": "blue-green", "step_interval_s": 4, "rollback": FAST_ROLLBACK,
                                "candidate": green})
    with gateway(cfg, tmp_path / "state", free_port()) as gw:
        with LoadLoop(gw.url, clients=2) as load:
            both = wait_for(lambda: {r["variant"] for r in gw.replicas("tiny")} == {"default", "candidate"}, 30,
                            "green ready while blue is still held")
            assert both
            wait_for(lambda: "promote candidate" in rollout_events(gw), 30, "green promoted")
            wait_for(lambda: {r["variant"] for r in gw.replicas("tiny")} == {"candidate"}
                     and not gw.replicas("tiny", "draining"), 30, "blue drained after the verdict")
        assert set(load.codes) == {200}, load.describe()
