"""Choosing a standby tier: the cheapest that wakes within the budget, and the predictive policy's `standby: auto`."""

from __future__ import annotations

from ebbtide.config import Config, build_controller, tier_offers
from ebbtide.core.signals import PoolSignals
from ebbtide.core.standby import StandbyWish, TierOffer, cheapest_tier, choose_standby

HOT, WARM, COLD = TierOffer("hot", 17.0, 4.5), TierOffer("warm", 0.02, 190.0), TierOffer("cold", 0.0, 400.0)


def test_the_cheapest_tier_that_wakes_in_time_wins_and_cold_never_does() -> None:
    assert cheapest_tier([HOT, WARM, COLD], 15.0) == HOT
    assert cheapest_tier([HOT, WARM, COLD], 190.0) == WARM
    assert cheapest_tier([HOT, WARM, COLD], 4.0) is None
    assert cheapest_tier([TierOffer("hot", 1.0, 5.0), TierOffer("warm", 1.0, 3.0)], 10.0) == TierOffer(
        "warm", 1.0, 3.0)  # same price: the faster


def test_a_reserve_only_while_the_forecast_asks_for_replicas() -> None:
    assert choose_standby([HOT, WARM], 15.0, 2, active=True) == StandbyWish("hot", 2)
    assert choose_standby([HOT, WARM], 15.0, 2, active=False) == StandbyWish("cold", 0)
    assert choose_standby([HOT, WARM], 1.0, 2, active=True) == StandbyWish("cold", 0)


def pool_config(**predictive: object) -> Config:
    return Config.model_validate({"pools": [{
        "name": "p", "replica": {"hourly_usd": 17.0, "standby": {"warm": {"hourly_usd": 0.02, "wake_s": 190}}},
        "scaling": {"min_replicas": 0, "max_replicas": 4, "policies": [
            {"kind": "predictive", "capacity_per_replica_rps": 10.0, "lead_time_s": 60, **predictive}]},
    }]})  # fmt: skip


def decide(cfg: Config, arrivals: int) -> StandbyWish | None:
    controller = build_controller(cfg.pools[0])
    state = controller.initial_state()
    decision = None
    for k in range(0, 121, 10):  # two minutes of steady traffic, no history: the reactive fallback
        signals = PoolSignals("p", float(k), 1, (), 0, arrivals * k // 120)
        decision, state = controller.decide(signals, state, float(k))
    assert decision is not None
    return decision.standby


def test_predictive_auto_keeps_the_tier_that_fits_its_budget_from_the_pools_tiers() -> None:
    cfg = pool_config(standby="auto", standby_count=1)
    assert tier_offers(cfg.pools[0]) == (TierOffer("hot", 17.0, 4.5), TierOffer("warm", 0.02, 190.0))
    assert decide(cfg, 2_400) == StandbyWish("hot", 1)  # 15 s budget: only hot wakes in time
    assert decide(pool_config(standby="auto", standby_budget_s=200), 2_400) == StandbyWish("warm", 1)
    assert decide(pool_config(standby="auto"), 0) == StandbyWish("cold", 0)  # nothing asked: no reserve
    assert decide(pool_config(), 2_400) is None  # off: no opinion, the pool's scaling.standby stands
