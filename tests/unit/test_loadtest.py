"""Load generator: arrivals at compressed profile time, open-loop client against the stub engine, report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pytest
import typer
from typer.testing import CliRunner

from ebbtide.loadtest import (
    Arrival,
    ArrivalError,
    LoadOptions,
    percentiles,
    profile_arrivals,
    run_load,
    summarize,
    trace_arrivals,
)
from ebbtide.loadtest import cli as loadtest_cli
from ebbtide.loadtest.runner import engine_ms_per_token
from ebbtide.sim.traffic import BusinessHours
from ebbtide.testing.stub_engine import StubConfig, spawn_stub, stub_server


def test_business_day_in_a_minute_follows_the_curve() -> None:
    got = profile_arrivals("business-hours", compress=1440, duration_s=60, max_requests=100_000, seed=1)
    times = [a.at_s for a in got]
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 60
    # 24 h in 60 s: 1 wall second = 24 profile minutes. Expected count = the day's mean rate × 60 s.
    hours = [h / 10 for h in range(240)]
    mean_rps = sum(BusinessHours().mean_rps(h, weekend=False) for h in hours) / len(hours)
    assert len(got) == pytest.approx(mean_rps * 60, rel=0.25)
    night = sum(1 for t in times if 5 <= t < 12.5)  # 02:00-05:00, ~1 req/s
    noon = sum(1 for t in times if 30 <= t < 35)  # 12:00-14:00, ~25 req/s
    assert noon > 5 * night
    again = profile_arrivals("business-hours", compress=1440, duration_s=60, max_requests=100_000, seed=1)
    assert again == got, "same seed, same arrivals"


def test_constant_profile_and_caps() -> None:
    got = profile_arrivals("constant", rps=200, compress=1, duration_s=2, max_requests=100_000, seed=0)
    assert len(got) == pytest.approx(400, rel=0.15)
    capped = profile_arrivals("constant", rps=200, compress=1, duration_s=2, max_requests=50, seed=0)
    assert len(capped) == 50 and capped == got[:50]


def test_trace_replay_compressed(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n10,20,6\n20,30,7\n40,40,8\n")
    got = trace_arrivals(trace, compress=10, duration_s=3.5, max_requests=100)
    assert got == [Arrival(0.0, 10, 5), Arrival(1.0, 20, 6), Arrival(2.0, 30, 7)]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"compress": 0}, "--compress"),
    ({"duration_s": 0}, "--duration"),
    ({"max_requests": 0}, "--max-requests"),
    ({"start_hour": 200}, "--start-hour"),
])
def test_bad_arguments_name_the_flag(kwargs: dict[str, float], fragment: str) -> None:
    args: dict[str, float] = {"compress": 1, "duration_s": 1, "max_requests": 1, **kwargs}
    with pytest.raises(ArrivalError, match=fragment):
        profile_arrivals("business-hours", **args)  # type: ignore[arg-type]


def test_unknown_profile_and_missing_trace(tmp_path: Path) -> None:
    with pytest.raises(ArrivalError, match="unknown profile"):
        profile_arrivals("nope", compress=1, duration_s=1, max_requests=1)
    with pytest.raises(ArrivalError, match=r"missing\.csv"):
        trace_arrivals(tmp_path / "missing.csv", compress=1, duration_s=1, max_requests=1)


def test_percentiles_nearest_rank() -> None:
    assert percentiles([]) == {"p50": None, "p90": None, "p95": None, "p99": None, "max": None}
    got = percentiles([float(v) for v in range(1, 101)])
    assert got == {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def _spread(n: int, over_s: float) -> list[Arrival]:
    return [Arrival(i * over_s / n, 20, 8) for i in range(n)]


@pytest.mark.parametrize("stream", [True, False])
async def test_open_loop_against_the_stub(stream: bool) -> None:
    async with stub_server(StubConfig(chunks=16)) as url:
        outcomes, elapsed = await run_load(_spread(60, 0.5), LoadOptions(url=url + "/v1", stream=stream))
    assert [o.code for o in outcomes] == ["200"] * 60
    assert elapsed < 10
    ok = outcomes[0]
    assert ok.latency_s is not None and ok.latency_s > 0
    if stream:
        assert ok.output_chunks == 9, "8 chunks (max_tokens 8) + [DONE]"
        assert all(o.ttft_s is not None and o.latency_s is not None and o.ttft_s <= o.latency_s
                   for o in outcomes)
    else:
        assert ok.ttft_s is None
    report = summarize(outcomes, url=url, source="t", stream=stream, scheduled=60, window_s=0.5,
                       elapsed_s=elapsed)
    assert report.completed_ok == 60 and report.errors == 0 and report.offered_rps == pytest.approx(120)


async def test_errors_are_counted_by_code() -> None:
    async with stub_server() as url:
        outcomes, _ = await run_load(_spread(3, 0.01), LoadOptions(url=url + "/nowhere", stream=True))
    assert {o.code for o in outcomes} == {"404"}
    outcomes, _ = await run_load(_spread(2, 0.01), LoadOptions(url="http://127.0.0.1:9", stream=False))
    assert {o.code for o in outcomes} == {f"error:{aiohttp.ClientConnectorError.__name__}"}


async def test_slow_answers_are_cut_at_the_drain_bound() -> None:
    async with stub_server(StubConfig(delay_ms=3000)) as url:
        started = time.monotonic()
        outcomes, elapsed = await run_load(_spread(5, 0.05), LoadOptions(url=url, drain_s=0.2))
        assert time.monotonic() - started < 2.0
    assert [o.code for o in outcomes] == ["timeout"] * 5 and elapsed < 2.0


async def test_over_max_inflight_is_dropped_not_queued() -> None:
    async with stub_server(StubConfig(delay_ms=300)) as url:
        outcomes, _ = await run_load(_spread(10, 0.01), LoadOptions(url=url, max_inflight=4, drain_s=5))
    codes = [o.code for o in outcomes]
    assert codes.count("200") == 4 and codes.count("dropped") == 6


def _app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    loadtest_cli.register(app)
    return app


def test_cli_json_report_against_a_stub_process(free_port: int) -> None:
    with spawn_stub(free_port, chunks=4) as url:
        out = CliRunner().invoke(_app(), ["loadtest", "--url", url, "--profile", "constant", "--rps", "40",
                                          "--duration", "1", "--model", "m", "--json", "--fail-on-errors"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["codes"] == {"200": report["scheduled"]} and 25 <= report["scheduled"] <= 60
    assert report["ttft_s"]["p50"] is not None and report["stream"] is True


def test_cli_needs_exactly_one_source() -> None:
    out = CliRunner().invoke(_app(), ["loadtest", "--url", "http://127.0.0.1:9"])
    assert out.exit_code == 2 and "exactly one of --profile" in out.output
    argv = ["loadtest", "--url", "u", "--profile", "constant", "--duration", "7200"]
    out = CliRunner().invoke(_app(), argv)
    assert out.exit_code == 2 and "--duration" in out.output


def test_engine_timings_are_read_from_the_streams_last_event() -> None:
    last = json.dumps({"choices": [], "timings": {"prompt_ms": 70.1, "predicted_per_token_ms": 40.5}}).encode()
    assert engine_ms_per_token(b'xt"}]}\n\ndata: ' + last + b"\n\ndata: [DONE]\n\n") == 40.5
    assert engine_ms_per_token(b'data: {"choices": []}\n\ndata: [DONE]\n\n') is None  # engines without timings
    assert engine_ms_per_token(b'data: {"timings": {"predicted_per_token_ms"\n\n') is None  # cut: no guess
