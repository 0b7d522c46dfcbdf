"""Traces, rate series, bad input: exact counts; errors name the file and line or the field; exit code 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ebbtide.cli import _register_all, app
from ebbtide.sim.scenario import InputError
from ebbtide.sim.traces import TraceError, load_rate_trace, load_request_trace
from ebbtide.sim.traffic import TraceReplay
from tests.sim.conftest import AZURE, EXAMPLES, SERVEGEN, run_scenario


def _cli(*args: str) -> Any:
    _register_all()
    return CliRunner().invoke(app, list(args))


def test_azure_trace_replay_counts_every_row_exactly() -> None:
    span_days = TraceReplay(load_request_trace(AZURE)).span_s / 86400  # the last row plus one mean gap
    r = run_scenario(config_path=EXAMPLES / "seed-flat5.yaml", trace=AZURE, days=span_days, seed=1)
    assert r["requests"] == 19_366
    assert r["requests"] == r["completed"] + r["rejected"] + r["in_flight_at_end"]


def test_trace_rate_scale_compresses_time_and_loop_repeats() -> None:
    trace = load_request_trace(AZURE)
    assert len(trace) == 19_366 and trace.offsets_s[0] == 0.0
    span_s = float(trace.offsets_s[-1])
    period_s = (span_s + span_s / (len(trace) - 1)) / 2.0  # one pass at twice the rate, plus one mean gap
    r = run_scenario(
        config_path=EXAMPLES / "seed-flat5.yaml",
        trace=AZURE,
        rate_scale=2.0,
        loop=True,
        days=(2 * period_s - 0.01) / 86400,
        seed=1,
    )
    assert r["requests"] == 2 * 19_366
    with pytest.raises(InputError, match="give --loop to repeat it"):  # one pass is shorter than the run
        run_scenario(
            config_path=EXAMPLES / "seed-flat5.yaml", trace=AZURE, rate_scale=2.0, days=(2 * period_s) / 86400
        )


def test_servegen_rate_series_auto_detected_and_scaled() -> None:
    series = load_rate_trace(SERVEGEN)
    assert len(series.starts_s) == 2016 and series.widths_s[0] == 600.0
    expected = float((series.rates_per_s[:6] * series.widths_s[:6]).sum()) * 0.01
    r = run_scenario(
        config_path=EXAMPLES / "seed-flat5.yaml", rate_trace=SERVEGEN, rate_scale=0.01, days=1 / 24, seed=4
    )
    assert abs(r["requests"] - expected) < 5 * expected**0.5  # Poisson: within 5 sigma


def test_bad_trace_row_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
        "2023-11-16 18:15:50.99,lots,109\n2023-11-16 18:15:51.22,879,55\n"
    )
    with pytest.raises(TraceError, match=r"t\.csv:3: bad row"):
        load_request_trace(bad)
    assert len(load_request_trace(bad, skip_bad_rows=True)) == 2
    res = _cli("simulate", "-c", str(EXAMPLES / "seed-flat5.yaml"), "--trace", str(bad), "--days", "0.01")
    assert res.exit_code == 2 and "t.csv:3" in res.output
    res = _cli(
        "simulate",
        "-c",
        str(EXAMPLES / "seed-flat5.yaml"),
        "--trace",
        str(bad),
        "--days",
        "0.0001",  # 8.6 s: the two good rows are 4.3 s apart, so the trace covers 8.6 s (a mean gap after the last)
        "--skip-bad-rows",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["requests"] == 2


def test_negative_rate_in_series_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "r.csv"
    bad.write_text("window_start_s,total_rate_req_per_s\n0,1.5\n600,-2\n")
    with pytest.raises(TraceError, match=r"r\.csv:3: .*rate must be"):
        load_rate_trace(bad)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--traffic", "weekday-ish"], "--traffic = 'weekday-ish': unknown profile"),
        (["--rate-scale", "-1"], "--rate-scale = -1.0: must be"),
        (["--traffic", "constant", "--rps", "-3"], "--rps = -3.0"),
        (["--days", "0"], "--days = 0.0: must be > 0"),
        (["--start", "Wednesday"], "--start = 'Wednesday'"),
        (["--pool", "nope"], "--pool = 'nope': no such pool"),
        (["--traffic", "business-hours", "--trace", "x.csv"], "choose one traffic source"),
    ],
)
def test_bad_cli_input_exits_2_naming_the_field(args: list[str], needle: str) -> None:
    res = _cli("simulate", "-c", str(EXAMPLES / "seed-flat5.yaml"), *args)
    assert res.exit_code == 2
    assert needle in " ".join(res.output.split())


def test_config_with_max_below_min_exits_2_naming_the_field(tmp_config: Any) -> None:
    cfg = tmp_config("pools:\n  - name: p\n    scaling: {min_replicas: 4, max_replicas: 2}\n")
    res = _cli("simulate", "-c", str(cfg), "--days", "0.01")
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "ebbtide.yaml" in text and "max_replicas = 2: must be >= min_replicas = 4" in text


def test_bad_sim_block_names_the_field(tmp_config: Any) -> None:
    cfg = tmp_config("pools:\n  - name: p\n    sim: {cold_start: {kind: uniform, low_s: 9, high_s: 1}}\n")
    res = _cli("simulate", "-c", str(cfg), "--days", "0.01")
    assert res.exit_code == 2
    assert "pools.0.sim.cold_start" in res.output and "high_s = 1.0: must be >= low_s = 9.0" in res.output
