"""5-field cron ↔ AAS cron: both directions, the ``?`` rule, and cron's 0-6 vs AAS's 1-7 day numbers."""

from __future__ import annotations

from datetime import datetime

import pytest
from croniter import croniter

from ebbtide.export.sagemaker.cron import CronConversionError, from_aas, to_aas

TABLE = [
    ("45 8 * * MON-FRI", "cron(45 8 ? * MON-FRI *)"),
    ("0 19 * * *", "cron(0 19 * * ? *)"),
    ("0 9 1 * *", "cron(0 9 1 * ? *)"),
    ("*/15 8-18 * * SAT,SUN", "cron(*/15 8-18 ? * SUN,SAT *)"),
    ("0 6 * JAN-MAR MON", "cron(0 6 ? JAN-MAR MON *)"),
    ("30 2 L * *", "cron(30 2 L * ? *)"),
    ("0 12 * * FRI#2", "cron(0 12 ? * FRI#2 *)"),
]


@pytest.mark.parametrize(("cron", "aas"), TABLE)
def test_table_both_directions(cron: str, aas: str) -> None:
    assert to_aas(cron) == aas
    assert to_aas(from_aas(aas)) == aas


@pytest.mark.parametrize(
    ("cron", "aas"),
    [
        ("0 8 * * 1-5", "cron(0 8 ? * MON-FRI *)"),
        ("0 8 * * 0", "cron(0 8 ? * SUN *)"),
        ("0 8 * * 7", "cron(0 8 ? * SUN *)"),
        ("0 8 * * 6", "cron(0 8 ? * SAT *)"),
        ("0 8 * * 5-7", "cron(0 8 ? * SUN,FRI,SAT *)"),
        ("0 8 * * 1,3,5", "cron(0 8 ? * MON,WED,FRI *)"),
        ("0 8 * * */2", "cron(0 8 ? * SUN,TUE,THU,SAT *)"),
        ("0 8 * * 0-6", "cron(0 8 * * ? *)"),
        ("0 8 * * 4#1", "cron(0 8 ? * THU#1 *)"),
    ],
)
def test_cron_day_numbers_become_names(cron: str, aas: str) -> None:
    assert to_aas(cron) == aas


@pytest.mark.parametrize(
    ("aas", "cron"),
    [
        ("cron(0 8 ? * 2-6 *)", "0 8 * * MON-FRI"),
        ("cron(0 8 ? * 1 *)", "0 8 * * SUN"),
        ("cron(0 8 ? * 7 *)", "0 8 * * SAT"),
        ("cron(0 8 ? * 1,7 *)", "0 8 * * SUN,SAT"),
        ("cron(0 8 ? * * *)", "0 8 * * *"),
        ("cron(0 8 ? * 6#3 *)", "0 8 * * FRI#3"),
        ("cron(0 19 ? * * *)", "0 19 * * *"),
    ],
)
def test_aas_day_numbers_start_on_sunday(aas: str, cron: str) -> None:
    assert from_aas(aas) == cron


@pytest.mark.parametrize(
    "cron", ["45 8 * * MON-FRI", "0 8 * * 1-5", "0 8 * * 5-7", "0 19 * * *", "0 8 * * */2"]
)
def test_same_firing_times(cron: str) -> None:
    """The round trip fires at the same instants as the original for two weeks."""
    back = from_aas(to_aas(cron))
    start = datetime(2028, 2, 20, 0, 0)
    a, b = croniter(cron, start), croniter(back, start)
    assert [a.get_next(datetime) for _ in range(20)] == [b.get_next(datetime) for _ in range(20)]


@pytest.mark.parametrize(
    ("cron", "needle"),
    [("0 8 1 * MON", "split it into two"), ("0 8 * *", "5 fields"), ("0 8 * * FUNDAY", "not a day")],
)
def test_to_aas_refuses(cron: str, needle: str) -> None:
    with pytest.raises(CronConversionError, match=needle):
        to_aas(cron)


@pytest.mark.parametrize(
    ("aas", "needle"),
    [
        ("rate(5 minutes)", "only cron"),
        ("at(2028-02-23T08:45:00)", "only cron"),
        ("cron(0 8 ? * MON 2028)", "fixed year"),
        ("cron(0 8 * * MON *)", "exactly one"),
        ("cron(0 8 ? * ? *)", "exactly one"),
        ("cron(0 8 ? * MON/2 *)", "no 5-field"),
        ("cron(0 8 ? *)", "6 fields"),
    ],
)
def test_from_aas_refuses(aas: str, needle: str) -> None:
    with pytest.raises(CronConversionError, match=needle):
        from_aas(aas)
