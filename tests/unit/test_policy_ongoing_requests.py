"""ongoing_requests against Ray Serve's default autoscaling policy (target ongoing requests, delays,
smoothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.core.policies.base import Recommendation
from ebbtide.core.policies.ongoing_requests import OngoingRequestsPolicy, OngoingRequestsSpec
from ebbtide.core.signals import PoolSignals

TICK_S = 1.0


def signals(now_s: float, capacity: int, ongoing: int) -> PoolSignals:
    return PoolSignals("p", now_s, capacity, (), ongoing, 0)


def run(
    spec: OngoingRequestsSpec,
    until_s: float,
    capacity: int | Callable[[float], int],
    ongoing: Callable[[float], int],
) -> dict[float, Recommendation]:
    policy = OngoingRequestsPolicy(spec)
    state = policy.initial_state()
    out = {}
    for k in range(int(until_s / TICK_S) + 1):
        t = k * TICK_S
        cap = capacity(t) if callable(capacity) else capacity
        rec, state = policy.decide(signals(t, cap, ongoing(t)), state, t)
        out[t] = rec
    return out


SPEC = OngoingRequestsSpec()
FAST: dict[str, Any] = {
    "metrics_interval_s": 1,
    "look_back_period_s": 1,
}  # instantaneous metric, to test delays


def test_defaults_are_ray_serve_defaults() -> None:
    """ray.serve.config.AutoscalingConfig defaults (docs.ray.io): target_ongoing_requests 2, upscale_delay_s
    30, downscale_delay_s 600, smoothing_factor 1.0 (upscaling/downscaling factors fall back to it),
    look_back_period_s 30, metrics_interval_s 10.
    """
    assert (SPEC.target_per_replica, SPEC.upscale_delay_s, SPEC.downscale_delay_s) == (2, 30, 600)
    assert (SPEC.upscaling_factor, SPEC.downscaling_factor) == (1.0, 1.0)
    assert (SPEC.look_back_period_s, SPEC.metrics_interval_s) == (30, 10)


@pytest.mark.parametrize(("t", "desired"), [(0.0, 1), (29.0, 1), (30.0, 3)])
def test_upscale_only_after_upscale_delay(t: float, desired: int) -> None:
    """Ray Serve upscale_delay_s: "how long to wait before scaling up replicas" — the decision must persist
    (docs.ray.io, Advanced autoscaling). 6 ongoing on 1 replica, target 2 → 3, held until 30 s have passed."""
    assert run(SPEC, 30, 1, lambda _t: 6)[t].desired == desired


@pytest.mark.parametrize(("t", "desired"), [(599.0, 4), (600.0, 1)])
def test_downscale_only_after_downscale_delay(t: float, desired: int) -> None:
    """Ray Serve downscale_delay_s 600: scale down only after the lower count was wanted for 10 minutes
    (docs.ray.io, Advanced autoscaling). 2 ongoing on 4 replicas → 1."""
    assert run(SPEC, 600, 4, lambda _t: 2)[t].desired == desired


def test_an_interruption_restarts_the_delay() -> None:
    """Ray resets its decision counter when the wanted direction changes (docs.ray.io: the delay is how long
    the condition must hold): 20 s of wanting 3, one second at target, then 29 s of wanting 3 is not enough.
    """
    spec = OngoingRequestsSpec(**FAST)
    recs = run(spec, 60, 1, lambda t: 2 if t == 20 else 6)
    assert recs[20.0].desired == 1
    assert recs[50.0].desired == 1
    assert recs[51.0].desired == 3


def test_a_capacity_change_restarts_the_delay() -> None:
    """After a scaling decision Ray resets its counters, so the next step waits the full delay again
    (docs.ray.io, upscale_delay_s): capacity 1 → 3 at t=30 (as the controller applied it), load still needs 5.
    """
    spec = OngoingRequestsSpec(**FAST)
    recs = run(spec, 61, lambda t: 1 if t < 31 else 3, lambda _t: 10)
    assert recs[30.0].desired == 5
    assert recs[60.0].desired == 3
    assert recs[61.0].desired == 5


@pytest.mark.parametrize(("factor", "desired"), [(1.0, 1), (2.0, 2)])
def test_cold_start_fast_path(factor: float, desired: int) -> None:
    """Ray Serve scales from zero at once when requests arrive, without upscale_delay_s (docs.ray.io, "Scaling
    from zero"); ebbtide asks for ceil(upscaling_factor) replicas, then the ordinary rule takes over.
    """
    spec = OngoingRequestsSpec(upscaling_factor=factor)
    rec = run(spec, 0, 0, lambda _t: 5)[0.0]
    assert rec.desired == desired
    assert "cold start" in rec.reason
    assert run(spec, 0, 0, lambda _t: 0)[0.0].desired == 0


@pytest.mark.parametrize(
    ("capacity", "ongoing", "up", "down", "desired"),
    [
        (10, 40, 1.0, 1.0, 20),  # no smoothing: 40 / 2
        (10, 40, 0.5, 1.0, 15),  # upscaling_factor 0.5: half the step
        (10, 4, 1.0, 0.5, 6),  # downscaling_factor 0.5: 10 + (2 - 10) × 0.5
        (10, 40, 2.0, 1.0, 30),  # upscaling_factor 2: amplified
        (3, 7, 1.0, 1.0, 4),  # 3.5 rounded up once at the end
    ],
)
def test_smoothing_factors(capacity: int, ongoing: int, up: float, down: float, desired: int) -> None:
    """Ray Serve upscaling_factor / downscaling_factor: "a multiplicative factor to amplify or moderate each
    upscaling (downscaling) decision" (docs.ray.io, Advanced autoscaling); zero delays to see the count."""
    spec = OngoingRequestsSpec(
        upscale_delay_s=0, downscale_delay_s=0, upscaling_factor=up, downscaling_factor=down
    )
    assert run(spec, 0, capacity, lambda _t: ongoing)[0.0].desired == desired


def test_metrics_interval_and_look_back() -> None:
    """Ray replicas report ongoing requests every metrics_interval_s (10 s) and the autoscaler averages the
    last look_back_period_s (30 s) (docs.ray.io). A spike at t=5 is not seen until the t=10 sample; the
    average at t=10 is (2 + 100) / 2 = 51 → 26 replicas wanted; the wait starts at t=10, and at t=40 the
    window (10, 40] holds only samples of 100 → 50 replicas.
    """
    recs = run(SPEC, 40, 1, lambda t: 2 if t < 5 else 100)
    assert recs[9.0].reason.endswith("hold 1") and "2.0 ongoing" in recs[9.0].reason
    assert "51.0 ongoing" in recs[10.0].reason
    assert recs[39.0].desired == 1
    assert recs[40.0].desired == 50


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=80), st.integers(1, 4))
def test_property_changes_wait_for_their_delay(loads: list[int], start: int) -> None:
    """Ray Serve delays as a property, capacity following the recommendation: apart from the cold start at
    zero, a scale-up is only recommended once upscale_delay_s has passed since the last capacity change, a
    scale-down once downscale_delay_s has.
    """
    spec = OngoingRequestsSpec(upscale_delay_s=30, downscale_delay_s=120)
    policy = OngoingRequestsPolicy(spec)
    state = policy.initial_state()
    capacity, last_change = start, 0.0
    for k, load in enumerate(loads):
        t = k * 5.0
        rec, state = policy.decide(signals(t, capacity, load), state, t)
        assert rec.desired is not None
        if rec.desired > capacity and capacity > 0:
            assert t - last_change >= spec.upscale_delay_s
        if rec.desired < capacity:
            assert t - last_change >= spec.downscale_delay_s
        if rec.desired != capacity:
            capacity, last_change = rec.desired, t
