"""The oracle: hand-computed schedules, throughput at the SLO, the same arrivals as the twin, and the lower
bound it claims to be (a property over seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebbtide.config import SloSpec
from ebbtide.plan.compare import compare, scenario_oracle
from ebbtide.plan.oracle import needed_replicas, schedule, slo_throughput
from ebbtide.sim.service import ServiceModel
from tests.sim.test_compare_fixtures import small_scenario


def test_schedule_starts_each_replica_one_cold_start_ahead_and_keeps_it_through_short_gaps() -> None:
    """Need per minute 1 1 3 3 1 1 2 1, cold start 90 s, one warm replica at t=0.

    Level 1 runs all 8 minutes warm (480 s). Level 2 is needed in minutes 2-3 and 6: the 120 s gap is longer
    than a cold start, so two starts, (120-90, 240) and (360-90, 420). Level 3: minutes 2-3, (30, 240).
    """
    intervals, starts = schedule([1, 1, 3, 3, 1, 1, 2, 1], 60.0, 90.0, 1, 480.0)
    assert sorted(intervals) == [(0.0, 480.0), (30.0, 240.0), (30.0, 240.0), (270.0, 420.0)]
    assert starts == 3
    # With a 2-minute cold start the gap (120 s) is no longer than a restart: keep it running instead.
    intervals, starts = schedule([1, 1, 3, 3, 1, 1, 2, 1], 60.0, 120.0, 1, 480.0)
    assert sorted(intervals) == [(0.0, 240.0), (0.0, 420.0), (0.0, 480.0)]
    assert starts == 2


def test_needed_replicas_per_minute_within_bounds() -> None:
    times = np.asarray([1.0] * 5 + [61.0] * 130 + [130.0])  # 5, 130 and 1 arrivals in minutes 0, 1, 2
    assert needed_replicas(times, 240.0, 1.0, 1, 2) == [1, 2, 1, 1]
    assert needed_replicas(times, 240.0, 1.0, 0, 9) == [1, 3, 1, 0]


def test_throughput_at_the_slo_takes_the_largest_batch_whose_p95_request_fits() -> None:
    """TTFT 0.2 s + 0.01 s/token × b: a P95 request of 200 output tokens takes 0.2 + 199 × 0.01 b s; under a
    3 s SLO that is b <= 1.4, so b = 1, and the mean request (100 tokens) runs at 1 / 1.19 req/s."""
    slots = 4
    model = ServiceModel("hand", slots, (0.2,) * (slots + 1), tuple(0.01 * b for b in range(slots + 1)), 100, 1.0)
    thr = slo_throughput(model, SloSpec(latency_p95_s=3.0, ttft_p95_s=0.5), (100, 100), (100, 200))
    assert (thr.batch, thr.feasible) == (1, True)
    assert thr.rps == pytest.approx(1 / (0.2 + 99 * 0.01))
    loose = slo_throughput(model, SloSpec(latency_p95_s=20.0, ttft_p95_s=0.5), (100, 100), (100, 200))
    assert loose.batch == 4 and loose.rps == pytest.approx(4 / (0.2 + 99 * 0.04))
    never = slo_throughput(model, SloSpec(latency_p95_s=1.0, ttft_p95_s=0.5), (100, 100), (100, 200))
    assert never.feasible is False and never.batch == 1


def test_oracle_replays_the_arrivals_the_twin_draws(tmp_path: Path) -> None:
    scn = small_scenario(tmp_path, hours=1.0, warmup_days=0)
    result = compare(scn, workers=1).result
    assert {p["requests"] for p in result["policies"]} == {scenario_oracle(scn).requests}


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_oracle_costs_no_more_than_any_policy_that_meets_the_slo(tmp_path: Path, seed: int) -> None:
    """Lower bound at the SLO: every policy whose windows all met the SLO cost at least the oracle. Policies that
    missed windows may be cheaper - they bought less than the SLO needs - so they are not compared."""
    result = compare(small_scenario(tmp_path, seed=seed, hours=1.5, warmup_days=1), workers=2).result
    oracle_cost = result["oracle"]["cost_usd"]
    meeting = [p for p in result["policies"] if p["slo_attainment"] == 1.0]
    assert any(p["name"] == "flat at peak" for p in meeting)  # never vacuous
    for p in meeting:
        assert p["cost_usd"] >= oracle_cost - 1e-6, p["name"]
        assert p["ratio_to_oracle"] >= 1.0
