"""Fast checks of the pieces under the dashboard, report and demo: quantiles from histogram buckets, the
sampler's ring buffer and series file, the report's payload, the twin's clock stretching, the live figures."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from ebbtide.config import default_config
from ebbtide.core.signals import ReplicaState
from ebbtide.dashboard.series import SeriesSampler, histogram_quantile, read_series
from ebbtide.demo.cli import comparison_rows
from ebbtide.demo.live import engine_speed_alone, live_summary, replica_seconds, slo_attainment
from ebbtide.demo.plan import DemoPlan, demo_config
from ebbtide.demo.replay import replay_twin
from ebbtide.demo.run import load_prompt
from ebbtide.demo.twin import stretch_calibration
from ebbtide.loadtest.report import Outcome
from ebbtide.loadtest.runner import LoadOptions, run_load
from ebbtide.report.html import render_html
from ebbtide.report.load import ReportError, load_run
from ebbtide.serve.control.metrics import GatewayMetrics
from tests.sim.test_calibrate import recording_engine


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    buckets = ((0.5, 0.0), (1.0, 10.0), (2.0, 20.0), (math.inf, 20.0))
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.75)
    assert histogram_quantile(0.95, buckets) == pytest.approx(1.9)
    assert histogram_quantile(0.5, ((1.0, 0.0), (math.inf, 0.0))) is None
    assert histogram_quantile(0.99, ((1.0, 1.0), (math.inf, 4.0))) == 1.0  # in +Inf: the last finite bound


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


def _runtime() -> Any:
    clock = FakeClock()
    replicas = [SimpleNamespace(state=ReplicaState.READY, variant="default", inflight=2),
                SimpleNamespace(state=ReplicaState.STARTING, variant="default", inflight=0)]
    spec = SimpleNamespace(variants=[], replica=SimpleNamespace(hourly_usd=3.6))
    pool = SimpleNamespace(spec=spec, arrivals_total=0, fleet=SimpleNamespace(
        live_replicas=lambda: replicas, broker=SimpleNamespace(queue_depth=3)))
    policy = SimpleNamespace(now=lambda: clock.t * 60)
    return SimpleNamespace(cfg=default_config(), wall=clock, policy_clock=policy, metrics=GatewayMetrics(),
                           pools={"default": pool})


def test_sampler_rates_windowed_percentiles_ring_buffer_and_series_file(tmp_path: Path) -> None:
    rt = _runtime()
    sampler = SeriesSampler(rt, tmp_path, keep_s=5, window_s=2)
    first = sampler.sample()[0]
    assert (first.rps, first.ready, first.starting, first.queue, first.inflight) == (0.0, 1, 1, 3, 2)
    assert first.lat_p95 is None and first.usd_per_h == pytest.approx(7.2)
    for _ in range(10):
        rt.metrics.duration.labels("default").observe(0.3)
    rt.pools["default"].arrivals_total = 10
    rt.wall.t += 2.0
    second = sampler.sample()[0]
    assert second.rps == pytest.approx(5.0)
    assert second.lat_p50 is not None and 0.25 <= second.lat_p50 <= 0.5
    for _ in range(3):  # no new requests: the 2 s window forgets the old ones
        rt.wall.t += 1.0
        last = sampler.sample()[0]
    assert last.lat_p95 is None and last.rps == 0.0
    assert len(sampler.samples) == 5  # keep_s × pools
    assert [s.t for s in sampler.since(1002.0)] == [1003.0, 1004.0, 1005.0]
    sampler.close()
    with (tmp_path / "series.jsonl").open("a") as fh:
        fh.write('{"pool": "default", "t": 1')  # a torn last line is skipped
    assert len(read_series(tmp_path / "series.jsonl")) == 5


def test_a_burst_before_the_first_sample_shows_in_the_first_rate() -> None:
    """Requests that all land between the gateway's start and the sampler's first tick are drawn: the first
    sample's rate counts from construction. (Before, the first sample took the counter as its baseline, so this
    burst, which is the whole of a short load test on a fast machine, showed as rps 0 forever.)"""
    rt = _runtime()
    rt.pools = {}  # as in serve: the sampler is built with the app, before the runtime starts its pools
    sampler = SeriesSampler(rt, None)
    rt.pools = _runtime().pools
    rt.pools["default"].arrivals_total = 12
    rt.wall.t += 2.0
    assert sampler.sample()[0].rps == pytest.approx(6.0)
    rt.wall.t += 1.0
    assert sampler.sample()[0].rps == 0.0  # and the next sample does not count them again
    started_with_traffic = _runtime()
    started_with_traffic.pools["default"].arrivals_total = 5
    later = SeriesSampler(started_with_traffic, None)  # counts from its own construction, not from 0
    started_with_traffic.pools["default"].arrivals_total = 9
    started_with_traffic.wall.t += 1.0
    assert later.sample()[0].rps == pytest.approx(4.0)


def test_report_payload_from_a_series_file_inlines_everything(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"timeline\.csv"):
        load_run(tmp_path)
    rows = [{"pool": "p", "t": 100.0 + i, "pt": 6000.0 + 60 * i, "rps": 1.0, "starting": 0, "ready": 1,
             "draining": 0, "queue": 0, "inflight": 1, "lat_p50": 0.2, "lat_p95": 0.4, "ttft_p50": None,
             "ttft_p95": None, "cost_usd": 0.01 * i, "usd_per_h": 3.6} for i in range(3)]
    (tmp_path / "series.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    payload = load_run(tmp_path)
    assert payload["time_scale"] == 60 and payload["pools"]["p"]["rps"] == [1.0, 1.0, 1.0]
    payload["title"] = "</script><b>x"
    html = render_html(payload)
    assert "/dashboard/static" not in html and "<\\/script>" in html and "&lt;/script&gt;" in html


def test_twin_stretches_wall_durations_and_demo_config_pins_the_schedule() -> None:
    table = {"levels": [{"concurrency": 1, "ttft_p50_s": 0.25, "tpot_p50_s": 0.05, "requests": 4}]}
    level = stretch_calibration(table, 60)["levels"][0]
    assert (level["ttft_p50_s"], level["tpot_p50_s"], level["requests"]) == (15.0, 3.0, 4)
    counted = {**table, "prompt_tokens": 18}  # the server's count of the text the demo calls 16 tokens
    assert stretch_calibration(counted, 60)["prompt_tokens"] == 18
    assert stretch_calibration(counted, 60, prompt_ref_tokens=16)["prompt_tokens"] == 16
    plan = DemoPlan(minutes=10)
    assert plan.start_hour == 8.5 and plan.duration_s == 600
    assert DemoPlan(minutes=None).start_hour == 0.0 and DemoPlan(minutes=30).duration_s == 1440
    cfg = demo_config(plan, traffic_policy_epoch_s=0.0)  # 08:30 of the traffic day = 1970-01-01 00:00 UTC
    actions = cfg.pools[0].scaling.policies[1].actions
    assert [(a.name, a.cron, a.min_replicas) for a in actions] == [
        ("morning-pre-warm", "15 0 1 1 *", 2), ("afternoon-release", "30 5 1 1 *", 1),
        ("evening-cap", "30 10 1 1 *", 1)]
    arrivals = plan.arrivals()
    assert arrivals and all(a.output_tokens <= plan.output_tokens and 0 <= a.at_s < 600 for a in arrivals)


def test_live_figures_clip_to_the_traffic_window_and_count_failures_as_misses() -> None:
    replicas: list[dict[str, Any]] = [
        {"requested_at": 0.0, "stopped_at": 50.0}, {"requested_at": 20.0, "stopped_at": None}]
    assert replica_seconds(replicas, 10.0, 40.0) == pytest.approx(30.0 + 20.0)
    fast = [Outcome("200", t, latency_s=0.5, ttft_s=0.1) for t in (0.0, 1.0, 2.0)]
    assert slo_attainment([*fast, Outcome("503", 6.0)], 5.0, 3.0, 1.0) == 0.5


async def test_the_demo_calibrates_with_the_prompt_its_load_client_sends() -> None:
    plan = DemoPlan(minutes=1)
    sent: list[str] = []
    async with recording_engine(sent) as url:
        opts = LoadOptions(url=url, model="m", stream=True, endpoint="completions",
                           max_prompt_tokens=plan.prompt_tokens, max_output_tokens=plan.output_tokens)
        # The plan's first requests, sent at once (their token counts are what matters here).
        outcomes, _ = await run_load([replace(a, at_s=0.0) for a in plan.arrivals()[:3]], opts)
    assert [o.code for o in outcomes] == ["200"] * 3
    assert sent == [load_prompt(opts, plan)] * 3


def test_a_saved_demo_replays_through_the_twin_deterministically(tmp_path: Path) -> None:
    plan = DemoPlan(minutes=1)
    cfg = demo_config(plan, traffic_policy_epoch_s=0.0)
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    levels = [{"concurrency": c, "requests": 8, "ttft_p50_s": 0.1 * c, "ttft_p95_s": 0.15 * c,
               "tpot_p50_s": 0.05 * c, "tpot_p95_s": 0.06 * c} for c in (1, 2, 3, 4)]
    table = {"prompt_tokens": 18, "slots": 4, "levels": levels}
    (tmp_path / "calibration.json").write_text(json.dumps(table))
    live = {"latency_p95_s": 1.0}
    saved_plan = {**asdict(plan), "policy_start_s": 0.0, "initial_replicas": 1, "cold_starts_s": [3.0]}
    (tmp_path / "demo-results.json").write_text(json.dumps({"plan": saved_plan, "live": live}))
    live_back, first = replay_twin(tmp_path)
    _, again = replay_twin(tmp_path)
    assert live_back == live and first["requests"] == len(plan.arrivals()) > 0
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)  # (the timeline has NaNs)
    # The table's TTFTs refer to the plan's 16-token prompts (not the server's count of 18) unless told.
    _, server_count = replay_twin(tmp_path, prompt_ref_tokens=None)
    assert server_count["ttft_p50_s"] < first["ttft_p50_s"]
    slower = {**table, "levels": [{**lv, "tpot_p50_s": 2 * lv["tpot_p50_s"]} for lv in levels]}
    assert replay_twin(tmp_path, calibration=slower)[1]["latency_p50_s"] > first["latency_p50_s"]


def test_the_twin_sets_aside_the_cores_the_gateway_and_load_client_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ebbtide.demo.twin.os.cpu_count", lambda: 2)
    plan = DemoPlan(minutes=1)
    cfg = demo_config(plan, traffic_policy_epoch_s=0.0)
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    levels = [{"concurrency": c, "requests": 8, "ttft_p50_s": 0.1 * c, "ttft_p95_s": 0.1 * c,
               "tpot_p50_s": 0.05 * c, "tpot_p95_s": 0.05 * c} for c in (1, 2, 3, 4)]
    (tmp_path / "calibration.json").write_text(json.dumps({"prompt_tokens": 18, "slots": 4, "levels": levels}))

    def replay(side_cores: float | None) -> dict[str, Any]:
        saved_plan = {**asdict(plan), "policy_start_s": 0.0, "initial_replicas": 2, "cold_starts_s": [3.0]}
        if side_cores is not None:
            saved_plan["side_cores"] = side_cores
        (tmp_path / "demo-results.json").write_text(json.dumps({"plan": saved_plan, "live": {}}))
        return replay_twin(tmp_path)[1]

    unmeasured, idle_side, busy_side = replay(None), replay(0.0), replay(0.8)
    assert unmeasured["latency_p95_s"] == idle_side["latency_p95_s"]  # runs saved before the measurement
    # Two one-thread replicas on 2 cores, 0.8 of them busy with the gateway and the client: 2 / 1.2 slower
    # while both serve (the tail; most requests find one replica idle).
    assert busy_side["latency_p95_s"] > 1.3 * idle_side["latency_p95_s"]


def test_engine_speed_counts_only_requests_that_overlapped_no_other() -> None:
    def done(start: float, latency: float, ms: float | None) -> Outcome:
        return Outcome("200", start, latency_s=latency, ttft_s=0.1, engine_ms_per_token=ms)

    # 0-1 alone (30), 2-3 overlaps 2.5-3.5 (both out), 5-6 alone (34), 7-8 alone but no engine figure.
    outcomes = [done(0.0, 1.0, 30.0), done(2.0, 1.0, 90.0), done(2.5, 1.0, 95.0), done(5.0, 1.0, 34.0),
                done(7.0, 1.0, None)]
    assert engine_speed_alone(outcomes) == 30.0  # nearest-rank median of [30, 34]
    assert engine_speed_alone([done(0.0, 1.0, None)]) is None
    live = live_summary(outcomes, [], [], [], wall_start_s=0, wall_end_s=10, policy_start_s=0, policy_end_s=600,
                        slo={"window_s": 5.0, "latency_p95_s": 3.0, "ttft_p95_s": 1.0})
    base = {"requests": 5, "completed": 5, "latency_p50_s": 1.0, "latency_p95_s": 1.0, "ttft_p50_s": 0.1,
            "ttft_p95_s": 0.1, "slo_attainment": 1.0, "replica_seconds": 10.0, "cold_starts": 0, "decisions": 0,
            "scale_outs": 0, "scale_ins": 0}
    rows = comparison_rows({**base, **live}, {**base, "engine_ms_per_token_calibrated": 25.0})
    assert rows[-1] == ("engine ms/token, lone requests", "30.0", "25.0", "-16.7%")
    assert not any(r[0].startswith("engine") for r in comparison_rows(base, base))  # engines without timings
