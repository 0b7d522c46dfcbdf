"""``predictive`` on a virtual timeline: learning a weekly profile, forecasting one lead time ahead,
headroom from forecast errors, the fallback while history is short, weekday and time of day in its zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from ebbtide.config import Config, build_controller
from ebbtide.core.policies.predictive import PredictivePolicy, PredictiveSpec, PredictiveState
from ebbtide.core.signals import PoolSignals

TICK_S = 60
DAY_S = 86_400
NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")


def at(text: str, tz: ZoneInfo = UTC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def signals(arrivals: int, now_s: float) -> PoolSignals:
    return PoolSignals("p", now_s, 1, (), 0, arrivals)


class Timeline:
    """Drives a policy tick by tick from ``start``; ``rate(t)`` requests/s become whole arrivals per tick."""

    def __init__(self, policy: PredictivePolicy, start_s: float) -> None:
        self.policy, self.now_s, self.arrivals = policy, start_s, 0
        self.state: PredictiveState = policy.initial_state()
        self.last: int | None = None

    def run_until(self, end_s: float, rate: Callable[[float], float]) -> None:
        while self.now_s < end_s:
            self.step(rate)

    def step(self, rate: Callable[[float], float]) -> int | None:
        rec, self.state = self.policy.decide(signals(self.arrivals, self.now_s), self.state, self.now_s)
        self.arrivals += round(rate(self.now_s) * TICK_S)
        self.now_s += TICK_S
        self.last = rec.desired
        return rec.desired

    def desired_at(self, when_s: float, rate: Callable[[float], float]) -> int | None:
        self.run_until(when_s, rate)
        assert self.now_s == when_s
        return self.step(rate)


def noon_step(tz: ZoneInfo, weekdays_only: bool = False) -> Callable[[float], float]:
    """5 req/s, 30 req/s from 12:00 to 14:00 local (weekdays only if asked)."""

    def rate(t: float) -> float:
        local = datetime.fromtimestamp(t, tz)
        if weekdays_only and local.weekday() >= 5:
            return 5.0
        return 30.0 if 12 <= local.hour < 14 else 5.0

    return rate


def policy(**kw: object) -> PredictivePolicy:
    base: dict[str, object] = {"capacity_per_replica_rps": 10, "lead_time_s": 480, "bucket_s": 900}
    return PredictiveSpec.model_validate({**base, **kw}).build()


def plain(**kw: object) -> PredictivePolicy:
    """The forecast alone: each slot the median of itself and one neighbour either side, no hold after a busy
    minute (the defaults add margin at bucket edges; tests/unit/test_predictive_guard.py covers them)."""
    return policy(**{"smooth_buckets": 1, "smooth_quantile": 0.5, "hold_s": 0, **kw})


def test_the_issue_config_shape_loads_through_the_config() -> None:
    policies = yaml.safe_load(
        "- {kind: predictive, capacity_per_replica_rps: 10, lead_time_s: 480, bucket_s: 900, "
        "tz: America/New_York}"
    )
    cfg = Config.model_validate({"pools": [{"name": "p", "scaling": {"policies": policies}}]})
    (built,) = build_controller(cfg.pools[0]).policies
    assert isinstance(built, PredictivePolicy) and built.spec.tz == "America/New_York"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bucket_s", 700, "bucket_s = 700: must divide 86400"),
        ("tz", "Mars/Olympus", "tz = 'Mars/Olympus': not an IANA time zone"),
        ("capacity_per_replica_rps", 0, "greater than 0"),
    ],
)
def test_bad_fields_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        PredictiveSpec.model_validate({"capacity_per_replica_rps": 10, field: value})


def test_learns_a_week_then_scales_out_one_lead_time_before_the_step() -> None:
    """After one week every slot is known: the 12:00 step (30 req/s → 3 replicas) is asked for when 12:00
    enters the window [now, now + 480 s], i.e. from 11:52:00 on, and not one tick earlier."""
    rate = noon_step(UTC)
    tl = Timeline(plain(), at("2028-03-01 00:00"))  # a Wednesday
    tl.run_until(at("2028-03-08 11:00"), rate)
    assert all(tl.state.seen)
    assert tl.state.profile[2 * 96 + 48] == pytest.approx(30.0)  # Wednesday 12:00
    assert tl.state.profile[2 * 96 + 40] == pytest.approx(5.0)  # Wednesday 10:00
    assert tl.desired_at(at("2028-03-08 11:51"), rate) == 1
    assert tl.desired_at(at("2028-03-08 11:52"), rate) == 3
    # Held through the step while the window still holds a 12-14 bucket, down once 14:00 is past.
    assert tl.desired_at(at("2028-03-08 13:59"), rate) == 3
    assert tl.desired_at(at("2028-03-08 14:00"), rate) == 1


def test_demand_is_the_peak_minute_of_a_bucket_not_its_mean() -> None:
    """A 1-minute burst of 50 req/s in every 15-minute bucket at 4 req/s: the profile holds the burst."""

    def bursty(t: float) -> float:
        return 50.0 if int(t // 60) % 15 == 7 else 4.0

    tl = Timeline(policy(), at("2028-03-01 00:00"))
    tl.run_until(at("2028-03-08 06:00"), bursty)
    assert max(tl.state.profile) == pytest.approx(50.0)
    assert tl.desired_at(at("2028-03-08 06:30"), bursty) == 5
    mean_tl = Timeline(policy(rate_window_s=900), at("2028-03-01 00:00"))
    mean_tl.run_until(at("2028-03-08 06:00"), bursty)
    assert max(mean_tl.state.profile) == pytest.approx((14 * 4 + 50) / 15)


def test_headroom_is_the_quantile_of_recent_forecast_errors() -> None:
    """Week 1 at 40 req/s, week 2 at 50: each bucket misses by 10/40 = 25%; the profile moves halfway (45),
    and the ask is ceil(45 × 1.25 / 10) = 6 instead of ceil(45 / 10) = 5 (each slot alone, no bias guard). With
    the bias guard (default) the last 4 buckets also ran 25 % above their forecast, so the level is scaled by
    50 / 40 as well: ceil(45 × 1.25 × 1.25 / 10) = 8."""

    def two_weeks(t: float) -> float:
        return 40.0 if t < at("2028-03-08 00:00") else 50.0

    def ask(pol: PredictivePolicy) -> int | None:
        tl = Timeline(pol, at("2028-03-01 00:00"))
        tl.run_until(at("2028-03-15 00:00"), two_weeks)
        return tl.desired_at(at("2028-03-15 00:00"), two_weeks)

    tl = Timeline(policy(smooth_buckets=0, bias_buckets=0), at("2028-03-01 00:00"))
    tl.run_until(at("2028-03-15 00:00"), two_weeks)
    assert tl.policy.headroom(tl.state) == pytest.approx(0.25)
    assert tl.state.profile[0] == pytest.approx(45.0)
    assert tl.desired_at(at("2028-03-15 00:00"), two_weeks) == 6
    assert ask(policy(smooth_buckets=0, bias_buckets=0, max_headroom=0)) == 5
    assert ask(policy(smooth_buckets=0)) == 8


def test_short_history_falls_back_to_reactive_or_no_opinion() -> None:
    """Day one: no slot of the window was ever seen. ``reactive`` sizes for the recent rate (20 req/s → 2);
    ``none`` has no opinion. Before a full minute has been counted even ``reactive`` has nothing to say."""

    def flat(_: float) -> float:
        return 20.0

    reactive = Timeline(policy(), at("2028-03-01 00:00"))
    assert reactive.step(flat) is None
    assert reactive.desired_at(at("2028-03-01 00:30"), flat) == 2
    silent = Timeline(policy(fallback="none"), at("2028-03-01 00:00"))
    assert silent.desired_at(at("2028-03-01 06:00"), flat) is None
    # Six days later Wednesday is still unseen until its own bucket comes round again.
    silent.run_until(at("2028-03-07 23:00"), flat)
    assert silent.desired_at(at("2028-03-07 23:50"), flat) is None
    assert silent.desired_at(at("2028-03-08 00:00"), flat) == 2


def test_weekday_and_time_of_day_are_read_in_the_policy_time_zone() -> None:
    """Noon in New York is 17:00 UTC in winter and 16:00 UTC after the DST change (2028-03-12). A New York
    policy trained on the winter week pre-warms at 11:52 New York time on the Monday after; a UTC policy
    trained on the same arrivals still expects the step at 17:00 UTC and misses it by an hour."""
    rate = noon_step(NY, weekdays_only=True)
    ny = Timeline(policy(tz="America/New_York"), at("2028-03-06 00:00", NY))
    utc = Timeline(policy(tz="UTC"), at("2028-03-06 00:00", NY))
    ny.run_until(at("2028-03-13 11:00", NY), rate)
    utc.run_until(at("2028-03-13 11:00", NY), rate)
    assert ny.desired_at(at("2028-03-13 11:52", NY), rate) == 3
    assert utc.desired_at(at("2028-03-13 11:52", NY), rate) == 1
    # Saturday was learned as a quiet day in local time.
    assert ny.state.profile[5 * 96 + 48] == pytest.approx(5.0)


def test_counter_restart_starts_counting_afresh() -> None:
    """A restarted process reports a smaller counter: no negative rate is learned."""
    pol = policy()
    t0 = at("2028-03-01 00:00")
    state = pol.initial_state()
    for k, total in enumerate([0, 600, 1200, 5, 605]):
        _, state = pol.decide(signals(total, t0 + 60 * k), state, t0 + 60 * k)
    assert state.arrivals_at_start == 5 and state.peak_rps >= 0
    assert state.peak_rps == pytest.approx(10.0)


def test_lead_time_follows_the_drivers_measured_cold_start_unless_set() -> None:
    """DESIGN §4: lead_time = the measured p90 cold start; an explicit `lead_time_s` in the config wins."""
    from ebbtide.core.policies.predictive import PredictiveSpec
    from ebbtide.core.signals import PoolSignals

    measured = PoolSignals("p", 0.0, 1, (), 0, 0, cold_start_p90_s=123.0)
    unknown = PoolSignals("p", 0.0, 1, (), 0, 0)
    implicit = PredictiveSpec.model_validate({"capacity_per_replica_rps": 10}).build()
    explicit = PredictiveSpec.model_validate({"capacity_per_replica_rps": 10, "lead_time_s": 300}).build()
    assert implicit.lead_s(measured) == 123.0
    assert implicit.lead_s(unknown) == 480.0
    assert explicit.lead_s(measured) == 300.0


def test_a_slot_is_the_median_of_its_neighbours_so_one_odd_bucket_is_noise() -> None:
    """A week at 5 req/s except one 15-minute bucket at 30 (Wednesday 12:00) and a 45-minute plateau at 30
    (Wednesday 15:00-15:45). With ``smooth_buckets: 1`` the lone bucket is an outlier (median of 5, 30, 5 = 5)
    and is not provisioned for; the plateau keeps its level and its edges. ``smooth_buckets: 0`` trusts each
    bucket alone."""

    def rate(t: float) -> float:
        local = datetime.fromtimestamp(t, UTC)
        minute = local.hour * 60 + local.minute
        return 30.0 if 720 <= minute < 735 or 900 <= minute < 945 else 5.0

    smooth = Timeline(plain(), at("2028-03-01 00:00"))
    alone = Timeline(plain(smooth_buckets=0), at("2028-03-01 00:00"))
    for tl in (smooth, alone):
        tl.run_until(at("2028-03-08 11:00"), rate)
    assert smooth.desired_at(at("2028-03-08 11:55"), rate) == 1
    assert alone.desired_at(at("2028-03-08 11:55"), rate) == 3
    assert smooth.desired_at(at("2028-03-08 14:51"), rate) == 1
    assert smooth.desired_at(at("2028-03-08 14:52"), rate) == 3  # the plateau's edge, one lead time ahead
    assert smooth.desired_at(at("2028-03-08 15:44"), rate) == 3
    assert smooth.desired_at(at("2028-03-08 15:45"), rate) == 1


def test_a_running_replica_needed_again_within_a_cold_start_is_kept_not_restarted() -> None:
    """30 req/s except a 15-minute dip to 5 at 13:00 (``smooth_buckets: 0`` so the dip is learned as is).
    At 13:00 the window [13:00, 13:08] needs 1, but 13:15 (within lead + keep = 16 min) needs 3 again: with 3
    running the policy keeps 3; it starts nothing for that later demand (1 running: asks 1); ``keep_s: 0``
    lets the replicas go."""

    def rate(t: float) -> float:
        local = datetime.fromtimestamp(t, UTC)
        return 5.0 if local.hour == 13 and local.minute < 15 else 30.0

    def ask(pol: PredictivePolicy, capacity: int) -> int | None:
        tl = Timeline(pol, at("2028-03-01 00:00"))
        tl.run_until(at("2028-03-08 13:00"), rate)
        now = at("2028-03-08 13:00")
        seen = PoolSignals("p", now, capacity, (), 0, tl.arrivals)
        rec, _ = pol.decide(seen, tl.state, now)
        return rec.desired

    assert ask(plain(smooth_buckets=0), capacity=3) == 3
    assert ask(plain(smooth_buckets=0), capacity=1) == 1
    assert ask(plain(smooth_buckets=0, keep_s=0), capacity=3) == 1
    assert ask(plain(smooth_buckets=0, keep_s=300), capacity=3) == 1  # 13:15 is 13 min > 8 + 5 away
    # The default hold keeps what the busiest minute of the last 5 needed (12:59 ran at 30 req/s).
    assert ask(policy(smooth_buckets=0, keep_s=0), capacity=3) == 3


WEEKDAYS_ALIKE = [["mon", "tue", "wed", "thu", "fri"], ["sat", "sun"]]


def test_alike_days_forecast_tuesday_from_monday_where_weekdays_alone_know_nothing() -> None:
    """One Monday of history: with alike weekdays Tuesday's 12:00 step is forecast one lead time ahead; without,
    Tuesday has never been seen and the policy falls back to the recent rate (1 replica at 11:52)."""
    rate = noon_step(UTC)
    alike = Timeline(plain(alike_days=WEEKDAYS_ALIKE), at("2028-03-06 00:00"))  # a Monday
    alone = Timeline(plain(), at("2028-03-06 00:00"))
    assert alike.desired_at(at("2028-03-07 11:52"), rate) == 3
    assert alone.desired_at(at("2028-03-07 11:52"), rate) == 1
    assert "no history yet" in alone.policy.decide(signals(alone.arrivals, alone.now_s), alone.state,
                                                  alone.now_s)[0].reason
    # Saturday is in another group: Monday's noon does not teach it.
    sat_noon = 5 * 96 + 48
    assert not alike.policy.known(alike.state, sat_noon)


def test_alike_days_demand_is_the_mean_of_the_days_seen() -> None:
    """Monday's noon peaks at 30 req/s, Tuesday's at 50: Wednesday's noon slot (never seen) is forecast at 40,
    and each day keeps its own learned demand."""
    def rate(t: float) -> float:
        local = datetime.fromtimestamp(t, UTC)
        peak = 50.0 if local.weekday() == 1 else 30.0
        return peak if 12 <= local.hour < 14 else 5.0

    tl = Timeline(policy(smooth_buckets=0, alike_days=WEEKDAYS_ALIKE), at("2028-03-06 00:00"))
    tl.run_until(at("2028-03-08 00:00"), rate)
    mon_noon, tue_noon, wed_noon = 48, 96 + 48, 2 * 96 + 48
    assert tl.state.profile[mon_noon] == pytest.approx(30.0)
    assert tl.state.profile[tue_noon] == pytest.approx(50.0)
    assert not tl.state.seen[wed_noon]
    assert tl.policy.level(tl.state, wed_noon) == pytest.approx(40.0)
    assert tl.policy.level(tl.state, mon_noon) == pytest.approx(40.0)


def test_a_day_in_two_alike_groups_is_named() -> None:
    with pytest.raises(ValidationError, match=r"(?s)alike_days.*fri: a day can be in one group only"):
        PredictiveSpec.model_validate({"capacity_per_replica_rps": 10,
                                       "alike_days": [["mon", "fri"], ["fri", "sat"]]})
    with pytest.raises(ValidationError, match="alike_days"):
        PredictiveSpec.model_validate({"capacity_per_replica_rps": 10, "alike_days": [["monday"]]})


def alternate_bursts(t: float) -> float:
    """2 req/s overnight with one minute at 8 in each bucket (too quiet to teach bursts); from 06:00 20 req/s with one
    minute at 40 in every other 15-minute bucket."""
    local = datetime.fromtimestamp(t, UTC)
    minute_of_bucket, bucket = local.minute % 15, (local.hour * 60 + local.minute) // 15
    if local.hour < 6:
        return 8.0 if minute_of_bucket == 3 else 2.0
    return 40.0 if minute_of_bucket == 3 and bucket % 2 == 0 else 20.0


def test_burst_quantile_learns_each_slots_mean_and_one_pooled_burst_factor() -> None:
    """With burst_quantile a slot learns its bucket's mean (a quiet slot 20 req/s, a bursty one 21.3), bursts are
    the quantile of the busy buckets' peak/mean ratios (1.0 or 40 / 21.3 = 1.875; the overnight 2 req/s buckets
    do not count), and every slot is forecast at its mean × that factor. Without it a quiet slot learns 20 (its own
    minute peak) and is forecast at 20."""
    start = at("2028-03-06 00:00")
    pooled = Timeline(policy(smooth_buckets=0, burst_quantile=0.75), start)
    pooled.run_until(start + DAY_S, alternate_bursts)
    quiet, bursty = 6 * 4 + 1, 6 * 4  # Monday 06:15 and 06:00
    burst = 40 / ((14 * 20 + 40) / 15)
    assert pooled.state.profile[quiet] == pytest.approx(20.0)
    assert pooled.state.profile[bursty] == pytest.approx((14 * 20 + 40) / 15)
    assert sorted({round(r, 3) for r in pooled.state.bursts}) == [1.0, round(burst, 3)]
    assert pooled.policy.burst_factor(pooled.state) == pytest.approx(burst)
    assert pooled.policy.level(pooled.state, quiet) == pytest.approx(20 * burst)
    low = PredictiveSpec.model_validate({**pooled.policy.spec.model_dump(), "burst_quantile": 0.25}).build()
    assert low.burst_factor(pooled.state) == pytest.approx(1.0)

    peaks = Timeline(policy(smooth_buckets=0), start)
    peaks.run_until(start + DAY_S, alternate_bursts)
    assert peaks.state.profile[quiet] == pytest.approx(20.0)
    assert peaks.state.profile[bursty] == pytest.approx(40.0)
    assert peaks.policy.level(peaks.state, quiet) == pytest.approx(20.0)
    assert peaks.state.bursts == ()  # nothing kept that the forecast does not use
