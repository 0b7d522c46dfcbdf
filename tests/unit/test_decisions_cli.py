"""`ebbtide decisions --explain` on a scripted morning: schedule pre-warm, then target tracking scales out."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from ebbtide.cli import _register_all, app
from ebbtide.config import Config, build_controller
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView
from ebbtide.serve.control.store import Store

NY = ZoneInfo("America/New_York")


def scripted_store(path: Path) -> None:
    cfg = Config.model_validate({"pools": [{
        "name": "llama-70b",
        "scaling": {"min_replicas": 1, "max_replicas": 5, "scale_out_cooldown_s": 60, "scale_in_cooldown_s": 180,
                    "policies": [
                        {"kind": "target_tracking", "target": 600},
                        {"kind": "schedule", "tz": "America/New_York", "actions": [
                            {"cron": "45 8 * * MON-FRI", "min_replicas": 2, "max_replicas": 5,
                             "name": "morning-pre-warm"},
                            {"cron": "0 19 * * *", "min_replicas": 1, "max_replicas": 3}]}]},
    }]})
    controller = build_controller(cfg.pools[0])
    state = controller.initial_state()
    store = Store(path)
    start = datetime(2026, 11, 25, 8, 40, tzinfo=NY).timestamp()
    capacity, arrivals = 1, 0.0
    for minute in range(0, 30):
        now = start + minute * 60
        rate_per_replica = 60 if minute < 10 else 812
        arrivals += rate_per_replica * capacity
        replicas = tuple(ReplicaView(f"r{i}", ReplicaState.READY, 0, 4) for i in range(capacity))
        signals = PoolSignals("llama-70b", now, capacity, replicas, 0, math.floor(arrivals))
        decision, state = controller.decide(signals, state, now)
        if decision.direction != "none" or decision.blocked_by:
            store.add_decision(decision)
        capacity = decision.desired
    store.close()


def test_explain_prints_one_sentence_per_decision(tmp_path: Path) -> None:
    scripted_store(tmp_path / "ebbtide.db")
    _register_all()
    since = str(datetime(2026, 11, 25, 8, 0, tzinfo=NY).timestamp())
    result = CliRunner().invoke(app, ["decisions", "--state-dir", str(tmp_path), "--since", since, "--explain"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "scale out 1→2" in lines[0] and "bounds 2-5 from schedule (morning-pre-warm)" in lines[0]
    tt = [line for line in lines if "target_tracking saw 812 invocations/replica/min > 600 for 3 min" in line]
    assert tt and "scale out 2→3" in tt[0]
    as_json = CliRunner().invoke(app, ["decisions", "--state-dir", str(tmp_path), "--since", since, "--json"])
    rows = json.loads(as_json.output)["decisions"]
    assert rows[0]["explanation"] == lines[0].split(": ", 1)[1]
    assert {o["policy"] for o in rows[0]["opinions"]} == {"target_tracking", "schedule"}


def test_missing_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    _register_all()
    result = CliRunner().invoke(app, ["decisions", "--state-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no store at" in result.output
