"""What ``ebbtide demo`` runs: the compressed window of the business day, its traffic and the policy config.

Time: ``compress`` policy seconds pass per wall second (serve's ``--time-scale``), so with 60 a policy minute
is a wall second and a day takes 24 minutes. ``--minutes N`` plays N × compress / 60 hours of the day from
08:30 (the morning pre-warm at 08:45, the ramp, lunch at 12-14, the afternoon) - or the whole day when N
covers it.

Traffic: seed 000's business-hours curve (sim/traffic.py) at ``rate_scale`` of its rates, so the lunch peak
(25 req/s, bursts of 40) becomes ~2 req/s (bursts ~3) of short completions: enough to need the second replica of the
embedded 270M model on 2 cores without swamping it.

Policy: the seed's shape, compressed - AAS target tracking (per replica per policy minute) with cooldowns
60 s out / 180 s in, and schedule actions pinned to the policy clock: pre-warm to 2 at 08:45, release to
target tracking at 14:00, evening cap 1 at 19:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ebbtide.config import Config, default_config
from ebbtide.loadtest.arrivals import Arrival, profile_arrivals

__all__ = ["DemoPlan", "demo_config"]

DAY_START_HOUR = 8.5
SCHEDULE = (
    ("morning-pre-warm", 8.75, 2, 2),
    ("afternoon-release", 14.0, 1, 2),
    ("evening-cap", 19.0, 1, 1),
)


@dataclass(frozen=True, slots=True)
class DemoPlan:
    minutes: float | None = None
    compress: float = 60.0
    seed: int = 0
    rate_scale: float = 0.08
    prompt_tokens: int = 16
    output_tokens: int = 6
    target_per_replica_per_min: float = 1.5
    # serve start → traffic start: replica ready (~3 s) + calibration (36 requests: ~15 s quiet, ~30 s at load 3)
    lead_s: float = 50.0

    @property
    def duration_s(self) -> float:
        """Wall seconds of traffic."""
        day_s = 86400.0 / self.compress
        return day_s if self.minutes is None else min(day_s, self.minutes * 60.0)

    @property
    def start_hour(self) -> float:
        hours = self.duration_s * self.compress / 3600.0
        return 0.0 if hours >= 24.0 - 1e-9 else min(DAY_START_HOUR, 24.0 - hours)

    def window(self) -> str:
        h0 = self.start_hour
        h1 = h0 + self.duration_s * self.compress / 3600.0
        wall_min = self.duration_s / 60
        return f"{_hhmm(h0)}-{_hhmm(h1)} of the day in {wall_min:g} wall minutes (×{self.compress:g})"

    def arrivals(self) -> list[Arrival]:
        """Wall-clock arrivals (seconds after traffic start) of the compressed window, tokens capped."""
        found = profile_arrivals(
            "business-hours", compress=self.compress, duration_s=self.duration_s, max_requests=200_000,
            seed=self.seed, tz="UTC", start_hour=self.start_hour, rate_scale=self.rate_scale,
        )
        cap_in, cap_out = self.prompt_tokens, self.output_tokens
        return [Arrival(a.at_s, min(a.prompt_tokens, cap_in), min(a.output_tokens, cap_out)) for a in found]


def _hhmm(hour: float) -> str:
    minutes = round(hour * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _cron(epoch_s: float) -> str:
    t = datetime.fromtimestamp(epoch_s, UTC)
    return f"{t.minute} {t.hour} {t.day} {t.month} *"


def demo_config(plan: DemoPlan, traffic_policy_epoch_s: float, hourly_usd: float = 0.10) -> Config:
    """The embedded pool (min 1, max 2) with the compressed seed policy; schedule actions fire at the policy
    times where the traffic's day reaches 08:45, 14:00 and 19:00 (UTC crons on the compressed clock)."""
    embedded = default_config()
    pool = embedded.pools[0].model_dump(mode="json", exclude_none=True)
    actions = []
    for name, hour, lo, hi in SCHEDULE:
        at = traffic_policy_epoch_s + (hour - plan.start_hour) * 3600.0
        actions.append({"name": name, "cron": _cron(at), "min_replicas": lo, "max_replicas": hi})
    pool["replica"] = {**pool["replica"], "hourly_usd": hourly_usd}
    pool["scaling"] = {
        "min_replicas": 1, "max_replicas": 2, "tick_s": 6,
        "scale_out_cooldown_s": 60, "scale_in_cooldown_s": 180,
        "policies": [
            {"kind": "target_tracking", "target": plan.target_per_replica_per_min},
            {"kind": "schedule", "tz": "UTC", "actions": actions},
        ],
    }
    raw: dict[str, Any] = {
        "pools": [pool],
        "slo": {"latency_p95_s": 3.0, "ttft_p95_s": 1.0, "window_s": 300},
        "gateway": embedded.gateway.model_dump(mode="json"),
    }
    return Config.model_validate(raw)
