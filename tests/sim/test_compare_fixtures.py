"""Small, fast scenarios for the plan tests (no tests here): a scaled-down pool (4 slots, ~2 req/s per
replica, 2-minute cold starts) and a sharp daily ramp, a couple of hours long instead of a business week."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from ebbtide.plan.runner import Scenario, load_scenario
from ebbtide.sim.traffic import Arrivals, TokenModel, poisson_pieces

TZ = "America/New_York"
SMALL_POOL = f"""\
pools:
  - name: small
    engine: {{kind: vllm, model: m, slots: 4}}
    replica: {{hourly_usd: 10.0, startup_timeout_s: 900, drain_timeout_s: 60}}
    scaling:
      min_replicas: 1
      max_replicas: 6
      scale_out_cooldown_s: 60
      scale_in_cooldown_s: 180
      tick_s: 10
      policies:
        - {{kind: target_tracking, target: 120}}
    sim:
      service: {{kind: seed_assumed, rps_per_replica: 2, typical_latency_s: 1.5, ttft_s: 0.25}}
      cold_start: {{kind: fixed, seconds: 120}}
      tz: {TZ}
slo: {{latency_p95_s: 3.0, ttft_p95_s: 0.5, window_s: 300}}
"""


@dataclass
class SharpRamp:
    """``low_rps`` all day, ``high_rps`` from ``ramp_hour`` for ``hours`` (local time): a step no reactive
    policy with a 2-minute cold start can meet on time."""

    low_rps: float = 0.5
    high_rps: float = 7.0
    ramp_hour: float = 1.0
    hours: float = 1.0
    tz: str = TZ
    tokens: TokenModel = field(default_factory=lambda: TokenModel(mean_prompt=400, mean_output=100))
    name: str = "sharp-ramp"

    def rate(self, epoch_s: float) -> float:
        local = datetime.fromtimestamp(epoch_s, ZoneInfo(self.tz))
        hour = local.hour + local.minute / 60
        return self.high_rps if self.ramp_hour <= hour < self.ramp_hour + self.hours else self.low_rps

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        t0 = start_s
        while t0 < end_s:
            t1 = min(end_s, t0 + 3600.0)
            starts = np.arange(t0, t1, 60.0)
            widths = np.minimum(starts + 60.0, t1) - starts
            rates = np.asarray([self.rate(float(s)) for s in starts])
            times = poisson_pieces(rng, starts, widths, rates)
            prompt, output = self.tokens.sample(rng, len(times))
            yield (times - start_s).tolist(), prompt, output
            t0 = t1


def small_scenario(
    tmp_path: Path, *, seed: int = 1, hours: float = 2.5, warmup_days: float = 7.0, config: str = SMALL_POOL
) -> Scenario:
    """Midnight to ``hours`` later on 2028-02-23 (a Wednesday) with the ramp at 01:00."""
    path = tmp_path / "small.yaml"
    path.write_text(config)
    scn = load_scenario(path, traffic="business-hours", days=hours / 24, warmup_days=warmup_days, seed=seed)
    return replace(scn, traffic=SharpRamp())
