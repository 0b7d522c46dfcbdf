"""The twin's parts alone: clock order, traffic shape, batched service, cold starts, streaming percentiles."""

from __future__ import annotations

import math
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ebbtide.config.sim import FixedColdStart, PhasedColdStart, PipelineColdStart
from ebbtide.sim.clock import EventClock
from ebbtide.sim.coldstart import ColdStartModel, pipeline_phases_s
from ebbtide.sim.replica import SimReplica
from ebbtide.sim.results import N_BUCKETS, Results, percentile
from ebbtide.sim.service import ServiceModel
from ebbtide.sim.traffic import BusinessHours, poisson_pieces

NY = ZoneInfo("America/New_York")
WED = datetime(2028, 2, 23, tzinfo=NY).timestamp()


def test_clock_keeps_push_order_at_equal_times_and_refuses_the_past() -> None:
    clock = EventClock(0.0)
    seen: list[str] = []

    def note(at_s: float, name: str) -> None:
        seen.append(name)
        if name == "a":
            clock.push(5.0, note, "pushed while running")

    for name in ("a", "b", "c"):
        clock.push(5.0, note, name)
    clock.push(1.0, note, "first")
    clock.push(9.0, note, "later")
    assert clock.pop()[2] == "first" and clock.now_s == 1.0
    clock.run_until(5.0)
    assert seen == ["a", "b", "c", "pushed while running"] and clock.now_s == 5.0
    with pytest.raises(ValueError, match="before now"):
        clock.push(4.0, note, "late")
    clock.run_until(9.0, inclusive=False)
    assert "later" not in seen and clock.now_s == 9.0


def test_clock_interleaves_a_time_ordered_stream_and_stops_at_the_end() -> None:
    clock, order = EventClock(0.0), []
    clock.push(2.0, lambda at, p: order.append(("event", at)), None)
    clock.push(3.0, lambda at, p: order.append(("event", at)), None)
    arrivals = [(1.0, "x"), (2.0, "y"), (4.0, "z")]
    assert clock.interleave(iter(arrivals), lambda t, tag: order.append((tag, t)), 10.0)
    assert order == [("x", 1.0), ("event", 2.0), ("y", 2.0), ("event", 3.0), ("z", 4.0)]
    assert not EventClock(0.0).interleave(iter([(5.0, "late")]), lambda t, tag: None, 5.0)


def _hourly(day_start: float, seed: int = 1) -> list[int]:
    counts = [0] * 24
    for times, _, _ in BusinessHours().chunks(day_start, day_start + 86_400, np.random.default_rng(seed)):
        for t in times:
            counts[int(t // 3600)] += 1
    return counts


def test_business_hours_follows_the_seed_curve() -> None:
    hours = _hourly(WED)
    rps = [c / 3600 for c in hours]
    assert 550_000 < sum(hours) < 750_000  # "roughly 0.5-0.7 M requests" per weekday
    assert all(r < 10 for r in rps[0:8]) and all(r < 3 for r in rps[20:24])  # overnight single digits
    assert rps[8] < rps[9] < rps[10] < rps[11] and 11 < rps[10] < 16  # 09-11 ramp to ~15
    assert 22 < (rps[12] + rps[13]) / 2 < 28  # lunch averages ~25
    assert all(10 <= r <= 20 for r in rps[15:18])
    assert sum(hours[10:18]) / sum(hours) > 0.75  # most of the day inside business hours
    peak_min = 0
    for times, _, _ in BusinessHours().chunks(WED + 12 * 3600, WED + 14 * 3600, np.random.default_rng(2)):
        per_min = np.bincount((np.asarray(times) // 60).astype(int))
        peak_min = max(peak_min, int(per_min.max()))
    assert peak_min / 60 > 33  # 40 RPS bursts at lunch
    saturday = sum(_hourly(WED + 3 * 86_400))
    assert saturday < sum(hours) / 3


def test_business_hours_is_deterministic_per_seed() -> None:
    assert _hourly(WED, seed=5) == _hourly(WED, seed=5)
    assert _hourly(WED, seed=5) != _hourly(WED, seed=6)


def test_poisson_pieces_mean_matches_rate_times_width() -> None:
    rng = np.random.default_rng(0)
    starts, widths, rates = np.array([0.0, 10.0]), np.array([10.0, 30.0]), np.array([50.0, 0.0])
    t = poisson_pieces(rng, starts, widths, rates)
    assert abs(len(t) - 500) < 5 * math.sqrt(500) and t.max() < 10.0 and np.all(np.diff(t) >= 0)


def _model(tpot: list[float], ttft: float = 0.5) -> ServiceModel:
    n = len(tpot)
    return ServiceModel("test", n - 1, tuple([ttft] * n), tuple(tpot), 100, prefill_fixed_share=1.0)


def test_replica_alone_finishes_after_ttft_plus_tokens() -> None:
    r = SimReplica("r1", _model([0.1, 0.1, 0.2]), 0.0)
    r.start_request(0.0, 1, 0.0, 100, 11)
    assert r.next_finish_s() == pytest.approx(0.5 + 10 * 0.1)


def test_replica_batch_slows_everyone_processor_sharing() -> None:
    """TPOT 0.1 s alone, 0.2 s at batch 2. A (ttft 0.5 = 5 tokens' time, 10 more tokens) starts at 0; B joins
    at 1.0 with ttft 0.5 s = 2.5 tokens at 0.2 s, then 2 tokens. At t=1.0 A has 10 of its 15 virtual tokens;
    both advance at 5 tokens/s: B finishes at 1.0 + 4.5 x 0.2 = 1.9 (A at 14.5), then A alone: 1.95."""
    r = SimReplica("r1", _model([0.1, 0.1, 0.2]), 0.0)
    r.start_request(0.0, 1, 0.0, 100, 11)
    r.start_request(1.0, 2, 1.0, 100, 3)
    assert r.next_finish_s() == pytest.approx(1.9)
    done = r.pop_due(1.9, True)
    assert [d[1] for d in done] == [2] and r.batch == 1
    assert r.next_finish_s() == pytest.approx(1.95)


def test_cold_start_phases_range_timeout_and_failures() -> None:
    rng = random.Random(1)
    phases = ColdStartModel(PhasedColdStart.model_validate({}))
    samples = [phases.sample_s(rng) for _ in range(500)]
    assert min(samples) >= 100 and max(samples) <= 210 and phases.mean_s == 155
    slow = ColdStartModel(FixedColdStart(seconds=700), startup_timeout_s=600)
    out = slow.outcome(rng)
    assert (out.after_s, out.ready) == (600, False) and "600" in out.reason
    doomed = ColdStartModel(FixedColdStart(seconds=60), failure_probability=1.0)
    assert all(not (o := doomed.outcome(rng)).ready and 0 <= o.after_s <= 60 for _ in range(20))


def test_a_pipeline_cold_start_is_its_phases_from_the_cited_bandwidths() -> None:
    spec = PipelineColdStart.model_validate({})  # seed 003's phases for 141 GB, provision = seed 000's rest
    rng = random.Random(2)
    for _ in range(300):
        p = pipeline_phases_s(spec, rng)
        assert 140 <= p["provision"] <= 270 and 10 <= p["warmup"] <= 30
        assert 141 / 4.7 <= p["fetch"] <= 141 / 2.35 and 141 / 2.35 <= p["load"] <= 141 / 1.17
        local = pipeline_phases_s(spec, rng, from_disk=True)
        assert local["provision"] == 0 and 141 / 4.7 * 0.3 <= local["fetch"] <= 141 / 2.35 * 0.5
    model = ColdStartModel(spec)
    samples = [model.sample_s(rng) for _ in range(2000)]
    assert min(samples) >= 240 and max(samples) <= 480  # seed 000's 4-8 minutes end to end
    assert 300 < model.mean_s < 400
    staged = ColdStartModel(spec.model_copy(update={"staged": True}))
    assert staged.mean_s < model.mean_s - 15  # NVMe: 50-70% off a ~45 s fetch
    with pytest.raises(ValueError, match=r"local_speedup = \[0.5, 1.0\]"):
        PipelineColdStart.model_validate({"local_speedup": [0.5, 1.0]})
    with pytest.raises(ValueError, match=r"load_gb_per_s = \[0.0, 2.0\]"):
        PipelineColdStart.model_validate({"load_gb_per_s": [0, 2]})


def test_percentile_counts_rejections_as_misses() -> None:
    counts = np.zeros(N_BUCKETS, dtype=np.int64)
    counts[10] = 95
    assert percentile(counts, 0.95) == percentile(counts, 0.5)
    assert percentile(counts, 0.95, overflow=6) == math.inf
    assert percentile(counts * 0, 0.95) is None


def test_window_with_rejections_misses_the_slo() -> None:
    res = Results(slo_latency_s=3.0, slo_ttft_s=0.5, window_s=120)
    for minute in range(4):
        for _ in range(90):
            res.complete(1.0, 0.1, 10)
        if minute >= 2:
            for _ in range(10):
                res.reject("429 queue full")
        res.close_minute(arrivals=100, starting=0, ready=1, draining=0, capacity=1, queue=0, cost_usd=0.0)
    res.finish()
    assert (res.windows, res.windows_ok) == (2, 1)
    assert res.completed == 360 and res.latency.quantile(0.99) == 1.0


def test_the_planners_roofline_drives_the_twin_through_from_curve() -> None:
    from ebbtide.plan.hardware import default_catalog
    from ebbtide.plan.roofline import service_curve
    from ebbtide.plan.sizing import PRESETS
    from ebbtide.sim.service import from_curve

    curve = service_curve(PRESETS["llama-3-70b"], "fp16", default_catalog(), "ml.g5.48xlarge", context_tokens=950)
    model = from_curve(curve, 32, "plan roofline")
    assert model.tpot_s(8) == curve.tpot_s(8) and model.ttft_s(800, 4) == pytest.approx(curve.ttft_s(800, 4))
    assert model.tpot_s(1) > 0.029  # FP16 70B on 8 x A10G: >= ~29 ms per output token, as the seed page says
    r = SimReplica("r1", model, 0.0)
    r.start_request(0.0, 1, 0.0, 800, 300)
    assert r.next_finish_s() == pytest.approx(curve.ttft_s(800, 1) + 299 * curve.tpot_s(1))
