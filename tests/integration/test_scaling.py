"""The fleet grows under load and shrinks when idle, with zero failed requests (real llama.cpp replicas).

Policy time runs 60× faster (``--time-scale 60``) so HPA's 300 s stabilization and 180 s cooldowns take seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.gateway_harness import LoadLoop, gateway, wait_for, write_config


def test_load_scales_out_then_idle_scales_in_without_failures(tmp_path: Path, tiny_gguf_path: Path,
                                                              free_port: int) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", tiny_gguf_path,
        engine={"slots": 1},
        scaling={"min_replicas": 1, "max_replicas": 2, "scale_in_cooldown_s": 60,
                 "policies": [{"kind": "queue_depth", "target": 1, "scale_down_stabilization_s": 120}]},
    )
    with gateway(cfg, tmp_path / "state", free_port, "--time-scale", "60") as gw:
        with LoadLoop(gw.url, clients=6) as load:
            wait_for(lambda: len(gw.replicas("tiny")) >= 2, 30, "scale-out to 2 ready replicas")
        assert load.codes and set(load.codes) == {200}, load.describe()
        wait_for(lambda: len(gw.replicas("tiny")) == 1 and not gw.replicas("tiny", "draining"), 30,
                 "scale-in back to 1")
        decisions = gw.admin("/admin/api/decisions")[1]["decisions"]
        directions = [d["direction"] for d in decisions]
        assert "out" in directions and "in" in directions
        assert any(o["policy"] == "queue_depth" for o in decisions[0]["opinions"])
        events = [e["kind"] for e in gw.admin("/admin/api/events")[1]["events"]]
        assert events.count("ready") >= 2 and "draining" in events and "stopped" in events
        print(json.dumps({"requests": len(load.codes)}))
