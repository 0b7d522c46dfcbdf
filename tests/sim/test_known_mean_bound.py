"""examples/known_mean_bound.py: the schedule a perfect forecast of the mean would run, on a mean worked out by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from ebbtide.core.policies.schedule import ScheduleSpec

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "known_mean_bound.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("known_mean_bound", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def office_hours(hour: float, weekend: bool) -> float:
    """2 req/s, 20 from 09:00 to 17:00 on weekdays; nothing at the weekend."""
    if weekend:
        return 0.0
    return 20.0 if 9 <= hour < 17 else 2.0


def test_a_step_provisions_for_the_ramp_one_lead_time_ahead() -> None:
    kmb = _script()
    counts = kmb.steps(office_hours, False, 1.0, 10.0, 300.0, (0, 100))
    assert len(counts) == 288
    nine = 9 * 12  # the 5-minute step that starts at 09:00
    assert counts[nine - 3] == 1  # 08:45: its step and lead time end at 08:55
    assert counts[nine - 2] == 2  # 08:50: a replica asked for now serves from 08:55 into 09:00
    assert counts[nine] == 2
    assert counts[17 * 12 - 1] == 2  # 16:55 still serves the peak
    assert counts[17 * 12] == 1
    assert kmb.steps(office_hours, False, 1.6, 10.0, 300.0, (0, 100))[nine] == 4  # ceil(32 / 10)
    assert kmb.steps(office_hours, False, 1.0, 10.0, 300.0, (0, 1))[nine] == 1  # the pool's max bounds it


def test_every_step_is_the_fewest_replicas_covering_the_margin_over_its_horizon() -> None:
    kmb = _script()
    margin, capacity, lead = 1.3, 7.0, 420.0
    counts = kmb.steps(office_hours, False, margin, capacity, lead, (0, 100))
    for step, n in enumerate(counts):
        start = step * kmb.STEP_S
        peak = max(office_hours(((start + s) % 86_400) / 3600, False)
                   for s in range(0, kmb.STEP_S + int(lead) + 1, 10))
        assert n * capacity >= margin * peak - 1e-9
        assert (n - 1) * capacity < margin * peak or n == 0


def test_actions_change_only_where_the_count_does_and_parse_as_a_schedule() -> None:
    kmb = _script()
    actions = kmb.schedule_actions(office_hours, 1.0, 10.0, 300.0, (0, 100))
    weekday = [a for a in actions if a["cron"].endswith(" 1-5")]
    weekend = [a for a in actions if a["cron"].endswith(" 0,6")]
    assert [(a["cron"], a["min_replicas"]) for a in weekday] == [
        ("0 0 * * 1-5", 1), ("50 8 * * 1-5", 2), ("0 17 * * 1-5", 1)]
    assert weekend == [{"cron": "0 0 * * 0,6", "min_replicas": 0, "max_replicas": 1}]
    assert all(a["min_replicas"] == a["max_replicas"] for a in weekday)
    ScheduleSpec.model_validate({"tz": "UTC", "actions": actions})


def test_replicas_for_rounds_up_without_float_noise() -> None:
    kmb = _script()
    assert kmb.replicas_for(30.000000000001, 10.0, (0, 10)) == 3
    assert kmb.replicas_for(30.1, 10.0, (0, 10)) == 4
    assert kmb.replicas_for(0.0, 10.0, (1, 10)) == 1
    assert kmb.replicas_for(500.0, 10.0, (0, 5)) == 5
