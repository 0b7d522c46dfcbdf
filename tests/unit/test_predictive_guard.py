"""``predictive`` noticing a forecast gone wrong (core/policies/predictive_guard.py), on a virtual timeline: a
week of history, then a day the forecast did not see. Each guard is shown firing when it should, not firing on
what it should ignore, and how many minutes it takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ebbtide.core.policies import predictive_guard as guard
from ebbtide.core.policies.predictive import PredictivePolicy, PredictiveState
from ebbtide.core.signals import PoolSignals, ReplicaState, ReplicaView
from tests.unit.test_policy_predictive import TICK_S, UTC, at, noon_step, policy

WEEK_START = at("2028-03-01 00:00")  # a Wednesday
NEXT_WEDNESDAY = at("2028-03-08 00:00")


@dataclass
class Fleet:
    """What the driver shows: ready replicas, requests running on each, requests queued."""

    ready: int = 1
    running_each: int = 0
    queued: int = 0
    late_share: float = 0.0  # of the completions, those slower than the SLO's P95 latency


class FleetTimeline:
    """Drives a policy tick by tick; ``rate(t)`` requests/s arrive and, in steady state, complete; ``fleet(t)``
    is what the replicas show."""

    def __init__(self, pol: PredictivePolicy, rate: Callable[[float], float], fleet: Callable[[float], Fleet]) -> None:
        self.policy, self.rate, self.fleet = pol, rate, fleet
        self.now_s, self.arrivals, self.late = WEEK_START, 0, 0.0
        self.state: PredictiveState = pol.initial_state()

    def step(self) -> int | None:
        f = self.fleet(self.now_s)
        views = tuple(ReplicaView(f"r{i}", ReplicaState.READY, f.running_each, 32) for i in range(f.ready))
        signals = PoolSignals("p", self.now_s, f.ready, views, f.queued, self.arrivals, self.arrivals,
                              late_total=int(self.late))
        rec, self.state = self.policy.decide(signals, self.state, self.now_s)
        self.arrivals += round(self.rate(self.now_s) * TICK_S)
        self.late += self.rate(self.now_s) * TICK_S * f.late_share
        self.now_s += TICK_S
        return rec.desired

    def desired_at(self, when_s: float) -> int | None:
        while self.now_s < when_s:
            self.step()
        return self.step()


def week_then(before: Callable[[float], float], after: Callable[[float], float]) -> Callable[[float], float]:
    return lambda t: before(t) if t < NEXT_WEDNESDAY else after(t)


def quiet(_: float) -> Fleet:
    return Fleet()


def test_a_holiday_scales_the_forecast_down_after_two_buckets() -> None:
    """A week of the noon step (30 req/s 12-14, else 5), then a Wednesday at 1 req/s all day. After two closed
    buckets (30 min) at a fifth of their forecast the forecast is scaled by actual / forecast, so the noon step
    is not pre-warmed; without the guard it is (3 replicas, plus the headroom the holiday's misses add: 5)."""
    rate = week_then(noon_step(UTC), lambda _: 1.0)
    tl = FleetTimeline(policy(), rate, quiet)
    tl.desired_at(at("2028-03-08 00:16"))
    assert guard.bias(tl.policy.spec, tl.state.watch.misses) == 1.0  # one bucket is not enough
    tl.desired_at(at("2028-03-08 00:30"))
    assert guard.bias(tl.policy.spec, tl.state.watch.misses) == pytest.approx(0.2)
    assert tl.desired_at(at("2028-03-08 11:55")) == 1
    blind = FleetTimeline(policy(drop_buckets=0, bias_buckets=0), rate, quiet)
    assert blind.desired_at(at("2028-03-08 11:55")) == 5


def test_traffic_above_the_forecast_for_an_hour_scales_it_up() -> None:
    """Double the traffic from Wednesday 00:00: after four closed buckets (1 h) above the forecast by more than
    ``bias_up`` the forecast is scaled by actual / forecast: a little under 2, since the smoothed forecast of the
    later buckets already includes this week's first ones. The noon step then asks for more than the learned 3."""
    learned = noon_step(UTC)
    rate = week_then(learned, lambda t: 2 * learned(t))
    tl = FleetTimeline(policy(), rate, quiet)
    tl.desired_at(at("2028-03-08 00:46"))
    assert guard.bias(tl.policy.spec, tl.state.watch.misses) == 1.0
    tl.desired_at(at("2028-03-08 01:00"))
    assert 1.7 < guard.bias(tl.policy.spec, tl.state.watch.misses) <= 2.0
    assert (tl.desired_at(at("2028-03-08 11:55")) or 0) >= 6


def test_a_sustained_surge_is_provisioned_after_two_minutes_a_one_minute_spike_is_not() -> None:
    """A week at 5 req/s, then 25 req/s from Wednesday 10:00. The quietest of the last two 1-minute windows is
    above the forecast from 10:02: it asks for 25 req/s (3 replicas) then. A 50 req/s spike lasting one minute
    never makes two windows."""

    def flat(_: float) -> float:
        return 5.0

    def jump(t: float) -> float:
        return 25.0 if t >= at("2028-03-08 10:00") else 5.0

    def spike(t: float) -> float:
        return 50.0 if at("2028-03-08 10:00") <= t < at("2028-03-08 10:01") else 5.0

    surge = FleetTimeline(policy(), week_then(flat, jump), quiet)
    assert surge.desired_at(at("2028-03-08 10:01")) == 1
    assert surge.desired_at(at("2028-03-08 10:02")) == 3
    blip = FleetTimeline(policy(), week_then(flat, spike), quiet)
    assert [blip.desired_at(at(f"2028-03-08 10:0{m}")) for m in range(5)] == [1] * 5


def test_a_sustained_queue_asks_for_replicas_at_the_concurrency() -> None:
    """``concurrency_per_replica: 8``: 40 requests waiting for two minutes ask for ceil(40 / 8) = 5."""

    def fleet(t: float) -> Fleet:
        return Fleet(queued=40) if t >= at("2028-03-08 10:00") else Fleet()

    tl = FleetTimeline(policy(concurrency_per_replica=8), lambda _: 5.0, fleet)
    assert tl.desired_at(at("2028-03-08 10:01")) == 1
    assert tl.desired_at(at("2028-03-08 10:02")) == 5
    unwatched = FleetTimeline(policy(), lambda _: 5.0, fleet)
    assert unwatched.desired_at(at("2028-03-08 10:02")) == 1


def test_requests_staying_longer_lower_the_capacity_per_replica() -> None:
    """Capacity 10 req/s at 16 in flight: at the configured mix requests stay at most 1.6 s (Little's law).
    From Wednesday 10:00 four replicas run 12 each (48) while 20 req/s complete: 2.4 s, 1.5 × longer. After two
    windows the capacity per replica is divided by 1.5: 20 req/s asks 3 instead of 2 (lead time 480 s). The
    factor moves at most once per lead time + surge_s (600 s), then compounds while requests still stay longer;
    it is forgotten after ``slow_hold_s`` with no window confirming it. At the configured mix (7 running each:
    1.4 s) nothing changes."""

    def longer(t: float) -> Fleet:
        return Fleet(ready=4, running_each=12) if t >= at("2028-03-08 10:00") else Fleet(ready=2, running_each=7)

    pol = policy(concurrency_per_replica=16, max_headroom=0, slow_hold_s=3600)
    tl = FleetTimeline(pol, lambda _: 20.0, longer)
    assert tl.desired_at(at("2028-03-08 10:01")) == 2
    assert tl.desired_at(at("2028-03-08 10:02")) == 3
    assert tl.state.watch.slow == pytest.approx(1.5)
    tl.desired_at(at("2028-03-08 10:11"))
    assert tl.state.watch.slow == pytest.approx(1.5)  # settling: the fleet has not followed yet
    tl.desired_at(at("2028-03-08 10:12"))
    assert tl.state.watch.slow == pytest.approx(2.25)

    usual = FleetTimeline(pol, lambda _: 20.0, lambda _: Fleet(ready=4, running_each=7))
    assert usual.desired_at(at("2028-03-08 12:00")) == 2
    assert usual.state.watch.slow == 1.0

    def once(t: float) -> Fleet:  # longer for ten minutes, then a fleet that says nothing (no replica ready)
        if at("2028-03-08 10:00") <= t < at("2028-03-08 10:10"):
            return Fleet(ready=4, running_each=12)
        return Fleet(ready=2, running_each=7) if t < at("2028-03-08 10:00") else Fleet(ready=0)

    forgets = FleetTimeline(pol, lambda _: 20.0, once)
    forgets.desired_at(at("2028-03-08 11:03"))
    assert forgets.state.watch.slow_at_s == at("2028-03-08 10:02")  # set, never confirmed
    assert guard.slow_factor(pol.spec, forgets.state.watch, at("2028-03-08 11:02")) == pytest.approx(1.5)
    assert guard.slow_factor(pol.spec, forgets.state.watch, at("2028-03-08 11:03")) == 1.0


def test_requests_late_at_a_light_load_add_a_replica_and_calm_takes_it_off() -> None:
    """Outputs got longer: at 1.5 req/s one replica runs 2 requests (far from 16) and Little's law sees nothing,
    but 8 % of requests finish later than the SLO's P95 latency. Over a 5-minute window that is a missed P95:
    with ``watch_latency`` one replica is added on top of the forecast, a second only after lead time + surge_s
    if it is still late, never while the replicas are full (the load guard's case), never more than
    ``LATE_EXTRA_MAX``; after 30 minutes with at most 1 % late one is taken off. ``watch_latency: false`` turns
    it off."""
    late_from, calm_from = at("2028-03-08 02:00"), at("2028-03-08 03:00")

    def fleet(t: float) -> Fleet:
        share = 0.08 if late_from <= t < calm_from else 0.0
        return Fleet(ready=1, running_each=2, late_share=share)

    pol = policy(concurrency_per_replica=16, max_headroom=0)
    tl = FleetTimeline(pol, lambda _: 1.5, fleet)
    assert tl.desired_at(at("2028-03-08 01:59")) == 1
    assert tl.desired_at(at("2028-03-08 02:03")) == 1  # 3 of the 5 minutes late: 4.8 % of the window
    assert tl.desired_at(at("2028-03-08 02:04")) == 2  # 4 of 5: 6.4 %, the window's P95 missed: +1
    raised = tl.state.watch.late_at_s
    assert raised is not None
    assert tl.desired_at(raised + 540) == 2  # settling: lead time + surge_s (600 s)
    assert tl.desired_at(raised + 600) == 1 + min(2, guard.LATE_EXTRA_MAX)  # still late: +1 more, if allowed
    top = 1 + guard.LATE_EXTRA_MAX
    assert tl.desired_at(at("2028-03-08 02:59")) == top
    assert tl.desired_at(at("2028-03-08 03:34")) == top  # calm since 03:05 (the window's last late minute), < 30 min
    assert tl.desired_at(at("2028-03-08 03:36")) == top - 1
    assert tl.desired_at(at("2028-03-08 06:00")) == 1

    off = FleetTimeline(policy(concurrency_per_replica=16, max_headroom=0, watch_latency=False), lambda _: 1.5, fleet)
    assert off.desired_at(at("2028-03-08 02:59")) == 1

    def full(t: float) -> Fleet:  # as late, but 20 running on the replica: the load, not the requests
        return Fleet(ready=1, running_each=20, late_share=0.08 if t >= late_from else 0.0)

    loaded = FleetTimeline(pol, lambda _: 1.5, full)
    assert loaded.state.watch.late_extra == 0
    loaded.desired_at(at("2028-03-08 02:30"))
    assert loaded.state.watch.late_extra == 0
