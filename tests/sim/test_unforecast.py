"""Unforecast scenarios laid over a profile or a trace: each changes the measured days as named and leaves the
learned days alone (growth aside, which history shows too); bad flags name the flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ebbtide.cli import _register_all, app
from ebbtide.plan.oracle import arrivals_of
from ebbtide.plan.runner import Scenario, scenario_from, warmup_arrivals
from ebbtide.sim.options import TrafficOptions
from ebbtide.sim.unforecast import UnforecastError
from tests.sim.conftest import AZURE, EXAMPLES

SEED_CONFIG = EXAMPLES / "seed-sagemaker.yaml"


def _scenario(days: float = 1.0, warmup_days: float = 1.0, **flags: Any) -> Scenario:
    inp = TrafficOptions(**flags).scenario_input(SEED_CONFIG, days=days, seed=11, warmup_days=warmup_days)
    return scenario_from(inp)


def _arrivals(scn: Scenario) -> tuple[np.ndarray, ...]:
    o = scn.options
    return arrivals_of(scn.traffic, o.start_epoch_s, o.duration_s, o.seed)


def _per_hour(times: np.ndarray) -> np.ndarray:
    return np.bincount((times // 3600).astype(int), minlength=24)[:24]


def test_holiday_gives_a_weekday_the_sunday_before_and_leaves_history_alone() -> None:
    base, holiday = _scenario(), _scenario(holiday="2028-02-23")
    sunday = _scenario(start="2028-02-20")
    assert np.array_equal(warmup_arrivals(base), warmup_arrivals(holiday))
    weekday, off, sun = (_per_hour(_arrivals(s)[0]) for s in (base, holiday, sunday))
    assert off.sum() < 0.25 * weekday.sum()
    assert abs(int(off.sum()) - int(sun.sum())) < 5 * sun.sum() ** 0.5
    assert off[12] < 0.2 * weekday[12]


def test_burst_multiplies_the_rate_for_its_minutes_only() -> None:
    base = _per_hour(_arrivals(_scenario())[0])
    burst = _arrivals(_scenario(burst="3x60m@12:00"))[0]
    assert np.all(np.diff(burst) >= 0)
    hours = _per_hour(burst)
    assert hours[12] == pytest.approx(3 * base[12], rel=0.1)
    others = [h for h in range(24) if h != 12]
    assert hours[others].sum() == pytest.approx(base[others].sum(), rel=0.02)


def test_growth_compounds_from_the_first_learned_day_history_included() -> None:
    base, grown = _scenario(warmup_days=7), _scenario(warmup_days=7, growth=25)
    measured = len(_arrivals(grown)[0]) / len(_arrivals(base)[0])
    assert measured == pytest.approx(1.25 * 1.25 ** (0.5 / 7), rel=0.02)  # a week after the first learned day
    learned = len(warmup_arrivals(grown)) / len(warmup_arrivals(base))
    assert 1.0 < learned < 1.2


def test_shift_brings_traffic_an_hour_early() -> None:
    base = _per_hour(_arrivals(_scenario())[0])
    early = _per_hour(_arrivals(_scenario(shift="1"))[0])
    assert early[8] == pytest.approx(base[9], rel=0.15)  # 09:00's traffic comes at 08:00
    assert early[18] == pytest.approx(base[19], rel=0.3)


def test_mix_change_lengthens_outputs_from_its_onset_only() -> None:
    base_t, _, base_out = _arrivals(_scenario())
    t, _, out = _arrivals(_scenario(mix_output="2@12:00"))
    assert np.array_equal(t, base_t)
    before, after = t < 12 * 3600, t >= 12 * 3600
    assert np.array_equal(out[before], base_out[before])
    assert out[after].mean() == pytest.approx(2 * base_out[after].mean(), rel=0.01)


def test_a_burst_over_a_trace_spreads_copies_of_its_rows_in_time_order() -> None:
    """Azure's trace compressed to 1 day would not fit; use 10 minutes of it with a 2x burst over minutes 2-6."""
    days = 10 / 1440
    base = _arrivals(_scenario(days=days, warmup_days=0, trace=AZURE))[0]
    burst = _arrivals(_scenario(days=days, warmup_days=0, trace=AZURE, burst="2x4m@00:02"))[0]
    assert np.all(np.diff(burst) >= 0)
    inside = lambda t: ((t >= 120) & (t < 360)).sum()  # noqa: E731
    assert inside(burst) == 2 * inside(base)  # every row once more: a factor of 2 keeps each copy
    assert len(burst) - inside(burst) == len(base) - inside(base)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"holiday": "2028-02-26"}, "a Saturday"),
        ({"holiday": "2028-02-22"}, "before the measured start"),
        ({"burst": "lots"}, "--burst = 'lots'"),
        ({"burst": "2x10m@2028-02-22T12:00"}, "before the measured start"),
        ({"mix_output": "x2"}, "--mix-output = 'x2'"),
        ({"shift": "30"}, "at most 24 hours"),
    ],
)
def test_bad_scenario_flags_are_named(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(UnforecastError, match=message):
        _scenario(**flags)


def test_cli_scenario_flag_errors_exit_2(tmp_path: Path) -> None:
    _register_all()
    res = CliRunner().invoke(app, ["simulate", "-c", str(SEED_CONFIG), "--days", "0.01", "--burst", "3 times"])
    assert res.exit_code == 2 and "--burst" in res.output
