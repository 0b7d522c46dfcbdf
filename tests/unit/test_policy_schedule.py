"""schedule against Application Auto Scaling scheduled actions (cron + Timezone): the latest due action is in
force.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ebbtide.core.policies.schedule import SchedulePolicy, ScheduleSpec
from ebbtide.core.signals import PoolSignals

NY = ZoneInfo("America/New_York")
SPEC = ScheduleSpec.model_validate(
    {
        "tz": "America/New_York",
        "actions": [
            {"cron": "45 8 * * MON-FRI", "min_replicas": 2, "max_replicas": 5, "name": "morning-pre-warm"},
            {"cron": "0 19 * * *", "min_replicas": 1, "max_replicas": 3},
        ],
    }
)


def at(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=NY).timestamp()


def bounds(now_s: float) -> tuple[int | None, int | None, str | None]:
    policy = SchedulePolicy(SPEC)
    rec, _ = policy.decide(PoolSignals("p", now_s, 1, (), 0, 0), policy.initial_state(), now_s)
    assert rec.desired is None  # bounds only, no opinion on the count
    return rec.min_replicas, rec.max_replicas, rec.bounds_source


MORNING = (2, 5, "morning-pre-warm")
EVENING = (1, 3, "0 19 * * *")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(2026, 11, 30, 8, 44, 59), EVENING),  # Monday 1 s before pre-warm: Sunday 19:00
        (at(2026, 11, 30, 8, 45), MORNING),  # Monday 08:45 sharp
        (at(2026, 11, 30, 18, 59, 59), MORNING),
        (at(2026, 11, 30, 19, 0), EVENING),
        (at(2026, 12, 4, 23, 0), EVENING),  # Friday night
        (at(2026, 12, 5, 8, 45), EVENING),  # Saturday 08:45: MON-FRI action does not fire
        (at(2026, 12, 6, 12, 0), EVENING),  # Sunday
        (at(2026, 12, 7, 8, 45), MORNING),  # next Monday
        # DST: spring forward on Sun 2026-03-08, fall back on Sun 2026-11-01; 08:45 stays 08:45 local.
        (at(2026, 3, 9, 8, 44, 59), EVENING),
        (at(2026, 3, 9, 8, 45), MORNING),
        (at(2026, 11, 2, 8, 44, 59), EVENING),
        (at(2026, 11, 2, 8, 45), MORNING),
    ],
)
def test_latest_due_action_in_local_time(when: float, expected: tuple[int, int, str]) -> None:
    """AAS scheduled actions: ``cron(45 8 ? * MON-FRI *)`` with ``Timezone`` America/New_York runs at 08:45
    local time, DST included (Application Auto Scaling User Guide, "Scheduled scaling"); the most recent
    action's min/max stays in force until the next one.
    """
    assert bounds(when) == expected


def test_dst_local_time_is_a_different_utc_instant() -> None:
    """08:45 EDT (after spring-forward) is 12:45 UTC, 08:45 EST is 13:45 UTC (AAS scheduled actions honour the
    time zone, Application Auto Scaling "Scheduled scaling" docs)."""
    assert at(2026, 3, 9, 8, 45) == datetime(2026, 3, 9, 12, 45, tzinfo=ZoneInfo("UTC")).timestamp()
    assert at(2026, 3, 6, 8, 45) == datetime(2026, 3, 6, 13, 45, tzinfo=ZoneInfo("UTC")).timestamp()
    assert bounds(at(2026, 3, 6, 8, 45)) == MORNING


def test_state_is_reused_until_the_next_action_then_re_resolved() -> None:
    """The policy caches the action in force until the next cron fire time (time comes only from now_s)."""
    policy = SchedulePolicy(SPEC)
    state = policy.initial_state()
    seen = []
    for k in range(0, 4):
        now = at(2026, 11, 30, 8, 44) + k * 30.0  # 08:44:00, 08:44:30, 08:45:00, 08:45:30
        rec, state = policy.decide(PoolSignals("p", now, 1, (), 0, 0), state, now)
        seen.append(rec.min_replicas)
    assert seen == [1, 1, 2, 2]


@pytest.mark.parametrize(
    "bad",
    [
        {"tz": "Mars/Olympus", "actions": [{"cron": "0 8 * * *", "min_replicas": 1}]},
        {"actions": [{"cron": "0 8 * *", "min_replicas": 1}]},
        {"actions": [{"cron": "0 8 * * *"}]},
        {"actions": [{"cron": "0 8 * * *", "min_replicas": 3, "max_replicas": 2}]},
        {"actions": []},
    ],
)
def test_invalid_schedules_are_rejected(bad: dict[str, object]) -> None:
    """Config errors are caught at load time (DESIGN §3: bad cron is an error naming the field)."""
    with pytest.raises(ValidationError):
        ScheduleSpec.model_validate(bad)
