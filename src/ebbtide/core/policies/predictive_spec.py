"""``predictive``'s settings (the policy itself is ``predictive.py``, its guards ``predictive_guard.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from ebbtide.core.policies.base import PolicySpec, TimeZone

if TYPE_CHECKING:
    from ebbtide.core.policies.predictive import PredictivePolicy

__all__ = ["DAY_S", "WEEKDAYS", "PredictiveSpec"]

DAY_S = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class PredictiveSpec(PolicySpec):
    kind: Literal["predictive"] = "predictive"
    capacity_per_replica_rps: float = Field(
        gt=0, description="Requests/s one replica serves inside the SLO (e.g. 10 = the seed's 600/min)."
    )
    lead_time_s: float = Field(
        480.0, ge=0, le=DAY_S, description="Provision this far ahead: the p90 cold start (seed 000: 4-8 min)."
    )
    bucket_s: int = Field(
        900, ge=60, le=3600, description="Time-of-day bucket of the profile (divides a day)."
    )
    rate_window_s: float = Field(
        60.0,
        gt=0,
        description="A bucket's demand = its highest rate over windows this long (bucket_s: mean).",
    )
    burst_quantile: float | None = Field(
        None, gt=0, le=1, description="None: each slot learns its bucket's highest rate (rate_window_s). Set: each "
        "slot learns its bucket's mean rate (many more arrivals, so a steadier sample) and a forecast is that "
        "mean × this quantile of the recent buckets' highest-to-mean ratios (pooled over the last error_buckets "
        "buckets carrying at least half a replica's capacity): bursts are learned once for all slots.",
    )
    tz: TimeZone = Field("UTC", description="IANA time zone of the weekday and time of day.")
    week_weight: float = Field(0.5, gt=0, le=1, description="Weight of the newest week in a mean.")
    alike_days: list[list[Weekday]] = Field(
        default_factory=list, description="Groups of weekdays whose traffic is alike (e.g. [[mon, tue, wed, thu, "
        "fri], [sat, sun]]): a slot's demand is the mean of its bucket over the group's days seen, so a week "
        "teaches each bucket five samples instead of one. A day in no group stands alone.",
    )
    error_quantile: float = Field(0.3, gt=0, le=1, description="Quantile of recent errors → headroom.")
    error_buckets: int = Field(96, ge=1, description="How many recent buckets' errors set the headroom.")
    max_headroom: float = Field(1.0, ge=0, description="Cap on the headroom, as a fraction of the forecast.")
    smooth_buckets: int = Field(
        2, ge=0, le=4, description="A slot's forecast is taken over its learned demand and this many neighbours "
        "either side (0: the slot alone).",
    )
    smooth_quantile: float = Field(
        0.6, ge=0, le=1, description="Which quantile of the slot and its neighbours is its forecast (0.5: the "
        "median; higher: more margin where neighbouring buckets disagree, as one week's bursts make them).",
    )
    keep_s: float | None = Field(
        None,
        ge=0,
        le=DAY_S,
        description="Keep a running replica the forecast needs again within lead time + this (default: the "
        "lead time: a restart costs a cold start); replicas are started only for [now, now + lead time].",
    )
    standby: Literal["off", "auto"] = Field(
        "off",
        description="auto: keep standby_count replicas in the cheapest tier of replica.standby that serves within "
        "standby_budget_s, while the forecast asks for replicas (none when it asks for none).",
    )
    standby_count: int = Field(1, ge=0, le=16, description="Reserve size with standby: auto.")
    standby_budget_s: float = Field(
        15.0, gt=0, description="How soon a reserve member must serve (5% of a 5-minute window: a P95 SLO)."
    )
    fallback: Literal["reactive", "none"] = Field(
        "reactive", description="With no history for the forecast window: last bucket's rate, or no opinion."
    )
    hold_s: float = Field(
        300.0, ge=0, le=3600, description="Never scale in below what the busiest rate window of this long ago needed."
    )
    surge_s: float = Field(
        120.0, ge=0, le=3600, description="Rate (or load) above what the forecast provisioned for this long: "
        "ask for what it needs now.",
    )
    surge_max: float = Field(
        2.0, ge=1, description="During a surge the coming forecast is scaled by actual / forecast, at most this."
    )
    bias_buckets: int = Field(
        4, ge=0, le=16, description="Closed buckets over which traffic running above the forecast is judged."
    )
    bias_up: float = Field(
        0.1, gt=0, description="Above the forecast by more than this share on average: forecast × actual/forecast."
    )
    drop_buckets: int = Field(2, ge=0, le=16, description="Closed buckets over which traffic far below is judged.")
    drop_ratio: float = Field(
        0.5, gt=0, lt=1, description="Traffic below this share of the forecast: forecast × actual/forecast."
    )
    concurrency_per_replica: float | None = Field(
        None, gt=0, description="Requests one replica holds in flight at capacity_per_replica_rps (plan compare: "
        "the batch at the SLO); a sustained heavier load asks for more replicas, and requests staying longer than "
        "that batch takes (Little's law) lower the capacity per replica. None: neither is watched.",
    )
    slow_margin: float = Field(
        0.05, ge=0, description="Requests staying this much longer than at the configured mix: replicas are slower."
    )
    slow_max: float = Field(4.0, ge=1, description="Cap on the slowdown factor of the capacity per replica.")
    slow_hold_s: float = Field(14_400.0, gt=0, description="A slowdown no window confirmed for this long is forgotten.")
    watch_latency: bool = Field(
        True, description="Add a replica on top of the forecast when over 5% of the last 5 minutes' requests "
        "finished later than the SLO's P95 latency while replicas were not full; off again after 30 min with at "
        "most 1% late.",
    )

    @field_validator("alike_days")
    @classmethod
    def _each_day_once(cls, value: list[list[str]]) -> list[list[str]]:
        days = [d for group in value for d in group]
        twice = sorted({d for d in days if days.count(d) > 1}, key=WEEKDAYS.index)
        if twice:
            raise ValueError(f"{', '.join(twice)}: a day can be in one group only")
        return value

    @field_validator("bucket_s")
    @classmethod
    def _divides_day(cls, value: int) -> int:
        if DAY_S % value:
            raise ValueError(f"bucket_s = {value}: must divide 86400 (a day) evenly")
        return value

    def build(self) -> PredictivePolicy:
        from ebbtide.core.policies.predictive import PredictivePolicy

        return PredictivePolicy(self)
