"""core/cost: replica-seconds to dollars, billing granularity, spot price, unit costs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebbtide.core.cost import CostLedger, Price, billed_seconds, fleet_cost, replica_cost_usd, unit_costs


def test_flat_five_for_a_day_at_17_is_exactly_2040() -> None:
    cost = fleet_cost([(0.0, 86_400.0)] * 5, Price(17.0))
    assert cost.cost_usd == 2040.0 and cost.replica_hours == 120.0


def test_per_second_vs_per_hour_billing() -> None:
    assert replica_cost_usd(90 * 60, Price(10.0)) == 15.0
    assert replica_cost_usd(90 * 60, Price(10.0, "per_hour")) == 20.0
    assert billed_seconds(3600.0, Price(1.0, "per_hour")) == 3600.0  # exactly one hour is one hour
    assert billed_seconds(3600.001, Price(1.0, "per_hour")) == 7200.0
    assert billed_seconds(0.0, Price(1.0, "per_hour")) == 0.0


def test_minimum_billing_and_spot_price() -> None:
    assert billed_seconds(10.0, Price(1.0, minimum_s=60.0)) == 60.0
    assert replica_cost_usd(3600.0, Price(20.36, spot_hourly_usd=6.0)) == 6.0


def test_cold_start_is_paid_interval_is_request_to_stop() -> None:
    # requested at t=100, ready at t=400 (cold start), stopped at t=3700: 3600 s billed
    assert fleet_cost([(100.0, 3700.0)], Price(36.0)).cost_usd == 36.0


def test_bad_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="stop before start"):
        fleet_cost([(10.0, 5.0)], Price(1.0))
    with pytest.raises(ValueError, match="seconds = -1"):
        billed_seconds(-1.0, Price(1.0))


def test_unit_costs() -> None:
    u = unit_costs(2040.0, 600_000, 180_000_000)
    assert u.per_1k_requests_usd == pytest.approx(3.4)
    assert u.per_1m_output_tokens_usd == pytest.approx(2040.0 / 180)
    assert unit_costs(5.0, 0, 0).per_1k_requests_usd is None


@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e5)), max_size=20), st.floats(0.01, 100))
def test_per_hour_never_cheaper_than_per_second(spans: list[tuple[float, float]], price: float) -> None:
    intervals = [(s, s + d) for s, d in spans]
    per_s = fleet_cost(intervals, Price(price)).cost_usd
    per_h = fleet_cost(intervals, Price(price, "per_hour")).cost_usd
    assert per_h >= per_s - 1e-6
    assert per_h <= per_s + price * len(intervals) + 1e-6


def test_ledger_bills_each_replica_at_its_own_price_until_it_closes() -> None:
    ledger = CostLedger()
    ledger.open("od", Price(36.0), 0.0)
    ledger.open("spot", Price(36.0, spot_hourly_usd=9.0), 0.0)
    ledger.open("hourly", Price(36.0, "per_hour"), 0.0)
    assert ledger.total_usd(0.0) == 0.0
    assert ledger.total_usd(100.0) == pytest.approx(1.0 + 0.25 + 36.0)  # a started hour is paid at once
    ledger.close("od", 1800.0)
    assert ledger.total_usd(3600.0) == pytest.approx(18.0 + 9.0 + 36.0)
    ledger.close("hourly", 3600.5)
    assert ledger.total_usd(3600.5) == pytest.approx(18.0 + 9.0 * 3600.5 / 3600 + 72.0)
    assert ledger.replica_seconds(3600.5) == pytest.approx(1800.0 + 3600.5 * 2)
    ledger.close("unknown", 10.0)  # closing twice or an unknown id is harmless
    with pytest.raises(ValueError, match="already billed"):
        ledger.open("spot", Price(1.0), 10.0)


@given(st.lists(st.tuples(st.floats(0, 1e5), st.floats(0, 1e5)), max_size=20))
def test_ledger_total_never_decreases_and_matches_fleet_cost(spans: list[tuple[float, float]]) -> None:
    ledger, price = CostLedger(), Price(17.0, "per_hour")
    events = sorted([(min(a, b), 0, i) for i, (a, b) in enumerate(spans)] +
                    [(max(a, b), 1, i) for i, (a, b) in enumerate(spans)])
    last = 0.0
    for t, kind, i in events:
        ledger.open(f"r{i}", price, t) if kind == 0 else ledger.close(f"r{i}", t)
        assert ledger.total_usd(t) >= last - 1e-9
        last = ledger.total_usd(t)
    expected = fleet_cost([(min(a, b), max(a, b)) for a, b in spans], price).cost_usd
    assert ledger.total_usd(1e6) == pytest.approx(expected)
