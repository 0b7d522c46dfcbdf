"""Traces are history: with ``--warmup-days N`` the learning policies are taught the trace's first N days and the
measured days are the ones after them, never the same arrivals again; a trace too short for both is an error
unless ``--loop`` repeats it, and the output then says the measured days repeat learned ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ebbtide.config import build_controller
from ebbtide.plan.oracle import arrivals_of
from ebbtide.plan.runner import DAY_S, Scenario, scenario_from, warmup_arrivals
from ebbtide.sim.run import Simulation
from ebbtide.sim.scenario import InputError, ScenarioInput, window_json
from ebbtide.sim.traces import load_request_trace
from ebbtide.sim.traffic import TraceReplay
from tests.sim.conftest import AZURE, EXAMPLES, SERVEGEN

SEED_CONFIG = EXAMPLES / "seed-sagemaker.yaml"


def _measured(scn: Scenario) -> np.ndarray:
    o = scn.options
    return o.start_epoch_s + arrivals_of(scn.traffic, o.start_epoch_s, o.duration_s, o.seed)[0]


@pytest.mark.parametrize("rate_scale", [1.0, 2.0])
def test_no_request_of_a_trace_is_both_learned_and_measured(rate_scale: float) -> None:
    """Azure's 58-minute trace as its first 20 minutes learned and the next 20 measured (2x: in half the time)."""
    days = 20 / 1440 / rate_scale
    scn = scenario_from(
        ScenarioInput(config_path=SEED_CONFIG, trace=AZURE, rate_scale=rate_scale, days=days, warmup_days=days)
    )
    assert isinstance(scn.traffic, TraceReplay)
    rows = load_request_trace(AZURE).offsets_s
    learned, measured = warmup_arrivals(scn), _measured(scn)
    start = scn.options.start_epoch_s
    assert len(learned) > 1000 and len(measured) > 1000
    assert learned.max() < start <= measured.min()
    # In the file's own seconds: the learned rows are its first 20 minutes, the measured rows the next ones.
    in_file = (np.concatenate([learned, measured]) - (start - days * DAY_S)) * rate_scale
    assert np.allclose(in_file, rows[: len(in_file)], atol=1e-3)
    assert in_file[len(learned) - 1] < 1200.0 <= in_file[len(learned)]
    assert in_file[-1] < 2400.0 <= rows[len(in_file)]
    # The twin replays exactly the measured rows.
    sim = Simulation(scn.cfg, scn.pool, scn.traffic, scn.options, controller=build_controller(scn.pool)).run()
    assert sim.arrivals == len(measured)


def test_a_rate_series_is_learned_from_its_first_days_and_measured_on_the_next(tmp_path: Path) -> None:
    """Day 0 of the series at 0.01 req/s, day 1 at 0.05: one learned day then one measured day must draw ~864
    learned and ~4,320 measured arrivals (replaying day 0 for both, as before, gave ~864 each)."""
    series = tmp_path / "r.csv"
    series.write_text("window_start_s,total_rate_req_per_s\n0,0.01\n43200,0.01\n86400,0.05\n129600,0.05\n")
    scn = scenario_from(ScenarioInput(config_path=SEED_CONFIG, rate_trace=series, days=1, warmup_days=1, seed=5))
    learned, measured = warmup_arrivals(scn), _measured(scn)
    assert abs(len(learned) - 864) < 5 * 864**0.5
    assert abs(len(measured) - 4320) < 5 * 4320**0.5
    assert learned.max() < scn.options.start_epoch_s <= measured.min()


def test_servegen_learns_days_1_to_7_and_measures_days_8_to_14() -> None:
    inp = ScenarioInput(config_path=SEED_CONFIG, rate_trace=SERVEGEN, rate_scale=0.002, days=7, warmup_days=7, seed=0)
    scn = scenario_from(inp)
    measured = _measured(scn) - scn.options.start_epoch_s
    window = window_json(scn.traffic, scn.options.start_epoch_s, 7 * DAY_S, 7, scn.tz, measured.tolist())
    trace = window["trace"]
    assert isinstance(trace, dict)
    assert trace["learned"] == ["0 s", "604800 s"]
    assert trace["measured"] == ["604800 s", "1209600 s"]
    assert trace["repeats_learned"] is False
    assert window["measured"] == ["2028-02-23T00:00:00-05:00", "2028-03-01T00:00:00-05:00"]


def test_a_trace_shorter_than_warmup_plus_days_is_an_error_naming_both_unless_looped() -> None:
    asked = r"covers 14 days, shorter than the 21 days asked for \(--warmup-days 7 \+ --days 14\)"
    with pytest.raises(InputError, match=asked):
        scenario_from(ScenarioInput(config_path=SEED_CONFIG, rate_trace=SERVEGEN, days=14, warmup_days=7))
    with pytest.raises(InputError, match=r"--trace .* covers 0\.0405\d* days at --rate-scale 1, shorter than the 1 "):
        scenario_from(ScenarioInput(config_path=SEED_CONFIG, trace=AZURE, days=1))
    looped = scenario_from(ScenarioInput(config_path=SEED_CONFIG, trace=AZURE, days=0.05, warmup_days=0.05, loop=True))
    o = looped.options
    window = window_json(looped.traffic, o.start_epoch_s, o.duration_s, 0.05, looped.tz, [])
    assert isinstance(window["trace"], dict) and window["trace"]["repeats_learned"] is True
