"""Standby tiers in the twin: a parked replica pays its tier's price, a scale-out wakes it in the tier's wake time
(not a cold start) and the reserve refills; plan compare runs the other tiers for a pool that keeps one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ebbtide.plan.compare import compare
from ebbtide.plan.runner import load_scenario
from tests.sim.conftest import EXAMPLES, run_scenario

POOL = """
pools:
  - name: p
    engine: {{kind: vllm, model: x, slots: 8}}
    replica: {{hourly_usd: 10, standby: {{hot: {{wake_s: 5{hot_price}}}, warm: {{hourly_usd: 0.02, wake_s: 120}}}}}}
    scaling:
      min_replicas: 1
      max_replicas: {max}
      scale_out_cooldown_s: 0
      standby: {{tier: {tier}, count: 1}}
      policies: [{{kind: queue_depth, target: 2, scale_down_stabilization_s: 3600}}]
    sim:
      service: {{kind: seed_assumed, rps_per_replica: 2, typical_latency_s: 2, ttft_s: 0.3}}
      cold_start: {{kind: fixed, seconds: 300}}
"""


def run(tmp_config: Callable[[str], Path], tier: str, rps: float, max_replicas: int = 1,
        hot_price: str = "") -> dict[str, Any]:  # fmt: skip
    cfg = tmp_config(POOL.format(tier=tier, max=max_replicas, hot_price=hot_price))
    return run_scenario(config_path=cfg, traffic="constant", rps=rps, start="2028-02-23T10:00", days=1 / 24)


def test_a_parked_standby_pays_its_tiers_price_for_the_hour(tmp_config: Any) -> None:
    # one serving replica ($10/h) and one parked from t=0, no scale-out: an hour of each
    assert run(tmp_config, "hot", 0.5)["cost_usd"] == pytest.approx(20.0)  # hot: the instance's price
    assert run(tmp_config, "hot", 0.5, hot_price=", hourly_usd: 4")["cost_usd"] == pytest.approx(14.0)
    assert run(tmp_config, "warm", 0.5)["cost_usd"] == pytest.approx(10.02)
    assert run(tmp_config, "cold", 0.5)["cost_usd"] == pytest.approx(10.0)


def test_a_scale_out_wakes_the_standby_instead_of_a_cold_start_and_the_reserve_refills(tmp_config: Any) -> None:
    hot = run(tmp_config, "hot", 6.0, max_replicas=3)  # 3 replicas' worth of traffic from the start
    cold = run(tmp_config, "cold", 6.0, max_replicas=3)
    assert hot["promotions"] >= 1 and cold["promotions"] == 0
    # the woken replica served within seconds, not after a 5-minute cold start: fewer requests waited long
    assert hot["latency_p95_s"] < cold["latency_p95_s"]
    assert hot["cold_starts"] >= 1  # the refill of the reserve (and any replica beyond it) starts cold


def test_plan_compare_runs_the_other_tiers_for_a_pool_that_keeps_a_standby() -> None:
    scn = load_scenario(EXAMPLES / "seed-standby.yaml", traffic="business-hours", days=1 / 24, warmup_days=0,
                        start="2028-02-23T08:30")  # fmt: skip
    rows = {p["name"]: p for p in compare(scn, workers=1).result["policies"]}
    assert list(rows)[:3] == ["yours (seed-standby.yaml)", "yours, cold only", "yours, hot standby x1"]
    assert rows["yours, hot standby x1"]["cost_usd"] > rows["yours, cold only"]["cost_usd"] + 17 * 0.9  # $17/h kept
    plain = load_scenario(EXAMPLES / "seed-sagemaker.yaml", days=1 / 24, warmup_days=0, start="2028-02-23T08:30")
    assert not any("standby" in p["name"] or "cold only" in p["name"] for p in compare(plain, workers=1).result[
        "policies"])
