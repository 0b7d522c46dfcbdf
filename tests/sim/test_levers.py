"""The twin's degradation levers (seed 003): fallback pool, priority classes, spot with an on-demand floor,
scheduled variants with their prices, rollouts — each on a small config with the simulator clock only."""

from __future__ import annotations

from typing import Any

import pytest

from ebbtide.core.fleet import CANDIDATE, Drain, Start
from ebbtide.sim.scenario import ScenarioInput, build_simulation
from tests.sim.conftest import EXAMPLES, run_scenario

FAST = "{kind: seed_assumed, rps_per_replica: 2, typical_latency_s: 2, ttft_s: 0.2}"


def pool(name: str, *, replica: str = "{hourly_usd: 10}", scaling: str = "{min_replicas: 1, max_replicas: 1}",
         extra: str = "", sim: str = "") -> str:
    return f"""
  - name: {name}
    engine: {{kind: vllm, model: x, slots: 4}}
    replica: {replica}
    scaling: {scaling}
    sim:
      service: {FAST}
      cold_start: {{kind: fixed, seconds: 60}}
{sim}{extra}"""


def run(tmp_config: Any, text: str, rps: float, hours: float = 1.0, seed: int = 1) -> dict[str, Any]:
    return run_scenario(config_path=tmp_config(text), traffic="constant", rps=rps, days=hours / 24, seed=seed)


def test_overload_overflows_interactive_requests_to_the_fallback_pool(tmp_config: Any) -> None:
    small = pool("small", replica="{hourly_usd: 1}", scaling="{min_replicas: 2, max_replicas: 2}")
    cfg = "pools:" + pool("big", extra="    fallback: small\n") + small + "\nslo: {latency_p95_s: 3}\n"
    with_fb = run(tmp_config, cfg, rps=4.0)
    alone = run(tmp_config, "pools:" + pool("big"), rps=4.0)
    assert with_fb["fallbacks"] > 0 and with_fb["pools"]["small"]["requests"] == with_fb["fallbacks"]
    assert with_fb["requests"] == with_fb["completed"] + with_fb["rejected"] + with_fb["in_flight_at_end"]
    assert with_fb["pools"]["small"]["cost_usd"] == pytest.approx(2 * 1.0, rel=1e-6)  # 2 replicas, 1 h, $1/h
    assert with_fb["cost_usd"] == pytest.approx(with_fb["pools"]["big"]["cost_usd"] + 2.0, abs=0.01)
    assert with_fb["latency_p95_s"] < alone["latency_p95_s"]
    assert with_fb["rejected"] < alone["rejected"] or alone["rejected"] == 0


def test_batch_is_shed_before_interactive_when_the_queue_is_full(tmp_config: Any) -> None:
    sim = "      classes: {interactive: 0.5, batch: 0.5}\n"
    cfg = "pools:" + pool("p", sim=sim) + "\ngateway: {max_queue: 20, priority_classes: [interactive, batch]}\n"
    r = run(tmp_config, cfg, rps=3.0)  # interactive alone (1.5/s) fits one replica (~2/s); both do not
    inter, batch = r["classes"]["interactive"], r["classes"]["batch"]
    assert batch["rejected_by_reason"].get("429 shed for a higher class", 0) > 0
    assert inter["rejected"] < batch["rejected"]
    assert inter["latency_p95_s"] < batch["latency_p95_s"]
    assert r["rejected"] == inter["rejected"] + batch["rejected"]


def test_spot_replicas_above_the_on_demand_floor_are_cheaper_and_preempted(tmp_config: Any) -> None:
    spot = "{hourly_usd: 10, spot: {hourly_usd: 3, notice_s: 30, min_on_demand: 1}}"
    sim = "      spot_preemptions_per_hour: 2\n"
    r = run(tmp_config, "pools:" + pool("p", replica=spot, scaling="{min_replicas: 3, max_replicas: 3}", sim=sim),
            rps=1.0, hours=4)
    on_demand = run(tmp_config, "pools:" + pool("p", scaling="{min_replicas: 3, max_replicas: 3}"), rps=1.0, hours=4)
    assert on_demand["cost_usd"] == pytest.approx(3 * 4 * 10.0, rel=1e-6)
    assert r["preemptions"] > 0 and r["pools"]["p"]["spot_replicas_started"] == 2 + r["preemptions"]
    # one on-demand replica all along ($40) + two spot places ($3/h each, 8 h, plus overlap during notices)
    assert 40 + 24 <= r["cost_usd"] < 40 + 24 * 1.2
    assert r["requests"] == r["completed"] + r["rejected"] + r["in_flight_at_end"]


def test_a_scheduled_variant_switch_bills_the_new_price_and_never_leaves_a_gap(tmp_config: Any) -> None:
    text = """
pools:
  - name: p
    engine: {kind: vllm, model: x, slots: 4}
    replica: {hourly_usd: 10}
    variants:
      - {name: small, hourly_usd: 2, sim: {cold_start: {kind: fixed, seconds: 120}}}
    scaling:
      min_replicas: 2
      max_replicas: 2
      policies:
        - kind: schedule
          tz: UTC
          actions:
            - {cron: "0 23 * * *", min_replicas: 2, variant: default}
            - {cron: "30 0 * * *", min_replicas: 2, variant: small}
    sim:
      service: {kind: seed_assumed, rps_per_replica: 2, typical_latency_s: 2, ttft_s: 0.2}
      cold_start: {kind: fixed, seconds: 60}
"""
    sim, _ = build_simulation(ScenarioInput(config_path=tmp_config(text), traffic="constant", rps=1.0,
                                            days=1 / 24, start="2028-02-23T00:00", tz="UTC", seed=1))
    sim.run()
    actions = sim.primary.actions
    starts = [(t, a.variant) for t, a in actions if isinstance(a, Start)]
    drains = [t for t, a in actions if isinstance(a, Drain)]
    assert starts == [(0.0, "default"), (0.0, "default"), (1800.0, "small"), (1800.0, "small")]
    assert drains and min(drains) >= 1800.0 + 120.0  # the old variant drains only once the new one is ready
    # 30 min × 2 × $10 + 2 min overlap × 2 × $10 + 30 min × 2 × $2, + the seconds the old finish in-flight work
    assert 0 <= sim.cost_so_far(3600.0) - (10.0 + 2 * 10 * 120 / 3600 + 2.0) < 2 * 10 * 10 / 3600


def canary(tmp_config: Any, candidate_sim: str = "") -> Any:
    rollout = f"""    rollout:
      mode: canary
      replicas: 1
      steps: [25, 100]
      step_interval_s: 600
      rollback: {{min_requests: 20, max_p95_ratio: 3}}
      candidate: {{hourly_usd: 12{candidate_sim}}}
"""
    sim, _ = build_simulation(ScenarioInput(
        config_path=tmp_config("pools:" + pool("p", scaling="{min_replicas: 2, max_replicas: 2}", extra=rollout)),
        traffic="constant", rps=1.0, days=1 / 24, seed=1))
    sim.run()
    return sim


def test_a_canary_sends_its_step_share_to_the_candidate_and_promotes_it(tmp_config: Any) -> None:
    sim = canary(tmp_config)
    ro = sim.primary.rollout
    assert ro is not None and ro.state.status == "promoted", ro.state
    share = len(ro.samples[CANDIDATE]) / (len(ro.samples[CANDIDATE]) + len(ro.samples["baseline"]))
    assert 0.2 < share < 0.9
    assert ro.events[0][1].startswith("canary step 2/2")
    assert sim.primary.target.variant == CANDIDATE
    assert all(r.variant == CANDIDATE for r in sim.primary.replicas.values())


def test_a_slow_candidate_is_rolled_back_and_the_baseline_keeps_serving(tmp_config: Any) -> None:
    slow = ", sim: {service: {kind: seed_assumed, rps_per_replica: 2, typical_latency_s: 8, ttft_s: 0.8}}"
    sim = canary(tmp_config, slow)
    ro = sim.primary.rollout
    assert ro is not None and ro.state.status == "rolled_back" and "P95" in ro.state.reason
    assert sim.primary.target.variant == "default" and sim.primary.target.candidates == 0
    assert not any(r.variant == CANDIDATE for r in sim.primary.replicas.values())


def test_seed_degrade_example_reports_per_pool_and_per_class() -> None:
    r = run_scenario(config_path=EXAMPLES / "seed-degrade.yaml", start="2028-02-23T11:00", days=2 / 24, seed=0)
    assert set(r["pools"]) == {"llama-3-70b-writing-assistant", "llama-3-8b-fallback"}
    assert set(r["classes"]) == {"interactive", "batch"}
    assert r["cost_usd"] == pytest.approx(sum(p["cost_usd"] for p in r["pools"].values()), abs=0.02)
    assert r["requests"] == r["completed"] + r["rejected"] + r["in_flight_at_end"]
