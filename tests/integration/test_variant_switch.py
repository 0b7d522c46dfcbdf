"""Scheduled vertical switch: start the new variant, wait until ready, move traffic, drain the old; no failures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ebbtide.providers.local import free_port
from tests.gateway_harness import LoadLoop, gateway, wait_for, write_config


def test_schedule_switches_variant_under_load_without_a_gap(tmp_path: Path, tiny_gguf_path: Path) -> None:
    minute = datetime.now(UTC).minute
    small = {"kind": "llamacpp", "model": str(tiny_gguf_path), "slots": 1, "threads": 1, "ctx_per_slot": 256}
    cfg = write_config(
        tmp_path / "c.yaml", tiny_gguf_path,
        variants=[{"name": "small", "engine": small, "hourly_usd": 0.5}],
        replica={"hourly_usd": 2.0},
        scaling={"min_replicas": 2, "max_replicas": 2, "policies": [{"kind": "schedule", "tz": "UTC", "actions": [
            {"cron": f"{(minute - 1) % 60} * * * *", "min_replicas": 2, "name": "day"},
            {"cron": f"{(minute + 5) % 60} * * * *", "min_replicas": 2, "variant": "small", "name": "night"},
        ]}]},
    )
    with gateway(cfg, tmp_path / "state", free_port(), "--time-scale", "60") as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 30, "2 ready replicas of the default variant")
        assert {r["variant"] for r in gw.replicas("tiny")} == {"default"}
        with LoadLoop(gw.url, clients=3) as load:
            wait_for(lambda: {r["variant"] for r in gw.replicas("tiny")} == {"small"}
                     and len(gw.replicas("tiny")) == 2 and not gw.replicas("tiny", "draining"), 45,
                     "the small variant serving alone")
            settled = len(load.codes)
            wait_for(lambda: len(load.codes) > settled + 3, 20, "requests served by the new variant")
        assert load.codes and set(load.codes) == {200}, load.describe()
        events = gw.admin("/admin/api/events")[1]["events"]
        kinds = [e["kind"] for e in events]
        assert "variant" in kinds
        switch_at = kinds.index("variant")
        after = events[switch_at:]
        first_new_ready = next(i for i, e in enumerate(after) if e["kind"] == "ready")
        first_old_drain = next(i for i, e in enumerate(after) if e["kind"] == "draining")
        assert first_new_ready < first_old_drain, "old capacity must stay until new capacity is ready"
        decisions = gw.admin("/admin/api/decisions")[1]["decisions"]
        assert any("variant small" in o["reason"] for d in decisions for o in d["opinions"])
