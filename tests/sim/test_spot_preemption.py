"""Spot preemptions in the twin: notices arrive at the configured rate, each starts a replacement at once, the
notified replica is gone after the notice, and cost is charged at the spot price."""

from __future__ import annotations

from ebbtide.config import Config
from ebbtide.sim.output import summary
from ebbtide.sim.run import RunOptions, Simulation
from ebbtide.sim.traffic import make_profile


def spot_config(rate_per_hour: float) -> Config:
    return Config.model_validate({"pools": [{
        "name": "p",
        "replica": {"hourly_usd": 10.0, "spot": {"hourly_usd": 3.0, "notice_s": 120}},
        "scaling": {"min_replicas": 2, "max_replicas": 2, "policies": []},
        "sim": {"spot_preemptions_per_hour": rate_per_hour,
                "cold_start": {"kind": "fixed", "seconds": 60}},
    }]})


def run(rate_per_hour: float, seed: int = 3) -> dict[str, object]:
    cfg = spot_config(rate_per_hour)
    traffic = make_profile("constant", tz="UTC", rps=2.0)
    sim = Simulation(cfg, cfg.pools[0], traffic, RunOptions(1_795_600_800.0, 6 * 3600, seed=seed)).run()
    return summary(sim)


def test_preemptions_follow_the_rate_and_capacity_is_replaced() -> None:
    calm, stormy = run(0.0), run(1.0)
    assert calm["preemptions"] == 0
    # 2 replicas × 6 h × 1/h ≈ 12 notices (Poisson); replacements are themselves preemptible.
    assert 5 <= stormy["preemptions"] <= 25
    assert stormy["cold_starts"] >= stormy["preemptions"] - 2
    assert stormy["requests"] == calm["requests"]
    assert stormy["cost_usd"] >= calm["cost_usd"] == 36.0, "2 spot replicas x 6 h x $3, replacements on top"
    lost = stormy["rejected_by_reason"].get("spot preemption", 0)
    assert lost <= stormy["preemptions"] * 4, "only requests running when a notice ends are lost"
    assert calm["rejected"] == 0


def test_same_seed_same_preemptions_another_seed_differs() -> None:
    first, again, other = run(1.0, seed=5), run(1.0, seed=5), run(1.0, seed=6)
    first.pop("wall_s", None), again.pop("wall_s", None), other.pop("wall_s", None)
    assert first == again
    assert (first["preemptions"], first["cost_usd"]) != (other["preemptions"], other["cost_usd"])
