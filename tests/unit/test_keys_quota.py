"""core/quota.py: token buckets for requests/min and tokens/min on a virtual timeline (t from 0)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.core.quota import QuotaDecision, QuotaLedger, QuotaLimits, retry_after_header


def test_rpm_allows_a_minute_of_burst_then_paces() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(rpm=60)
    assert all(ledger.admit("a", lim, 0.0).allowed for _ in range(60))
    refused = ledger.admit("a", lim, 0.0)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(1.0)
    assert "60 requests/min" in refused.reason
    assert not ledger.admit("a", lim, 1.0 - 1e-6).allowed, "unchanged just before the refill"
    assert ledger.admit("a", lim, 1.0).allowed, "one request refilled after 1 s at 60/min"


def test_tenants_are_independent() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(rpm=1)
    assert ledger.admit("a", lim, 0.0).allowed
    assert not ledger.admit("a", lim, 0.0).allowed
    assert ledger.admit("b", lim, 0.0).allowed


def test_tpm_reserves_then_settles_the_real_count() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(tpm=600)
    assert ledger.admit("a", lim, 0.0, tokens=500).allowed
    refused = ledger.admit("a", lim, 0.0, tokens=200)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(10.0)  # 100 tokens short at 10/s
    ledger.settle("a", lim, 0.0, reserved=500, used=100)  # refund 400
    assert ledger.admit("a", lim, 0.0, tokens=200).allowed


def test_overrun_is_charged_not_forgiven() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(tpm=600)
    assert ledger.admit("a", lim, 0.0, tokens=100).allowed
    ledger.settle("a", lim, 0.0, reserved=100, used=1100)  # bucket at -500
    refused = ledger.admit("a", lim, 0.0, tokens=10)
    assert refused.retry_after_s == pytest.approx(51.0)  # (10 - -500) / 10 per s


def test_estimate_above_a_minute_waits_only_for_a_full_bucket() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(tpm=100)
    assert ledger.admit("a", lim, 0.0, tokens=10_000).allowed


def test_both_limits_report_the_longer_wait() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(rpm=60, tpm=60)
    assert ledger.admit("a", lim, 0.0, tokens=60).allowed
    refused = ledger.admit("a", lim, 0.0, tokens=30)
    assert refused.retry_after_s == pytest.approx(30.0) and "tokens/min" in refused.reason


def test_unlimited_keeps_no_state() -> None:
    ledger = QuotaLedger()
    assert ledger.admit("a", QuotaLimits(), 0.0, tokens=10**9).allowed
    assert len(ledger) == 0


def test_prune_forgets_only_refilled_tenants() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(rpm=60)
    ledger.admit("a", lim, 0.0)
    ledger.admit("b", lim, 30.0)
    assert ledger.prune(1.0 - 1e-6) == 0
    assert ledger.prune(1.0) == 1 and len(ledger) == 1
    assert ledger.prune(31.0) == 1 and len(ledger) == 0


def test_time_going_backwards_does_not_refill() -> None:
    ledger, lim = QuotaLedger(), QuotaLimits(rpm=1)
    assert ledger.admit("a", lim, 10.0).allowed
    assert not ledger.admit("a", lim, 5.0).allowed


def test_bad_limits_and_header() -> None:
    with pytest.raises(ValueError, match="rpm = 0"):
        QuotaLimits(rpm=0)
    assert retry_after_header(QuotaDecision(False, 0.2)) == "1"
    assert retry_after_header(QuotaDecision(False, 2.01)) == "3"


@settings(max_examples=200, deadline=None)
@given(rpm=st.integers(1, 600), gaps=st.lists(st.floats(0, 5), min_size=1, max_size=300))
def test_never_more_than_burst_plus_refill(rpm: int, gaps: list[float]) -> None:
    ledger, lim, now, allowed = QuotaLedger(), QuotaLimits(rpm=rpm), 0.0, 0
    for gap in gaps:
        now += gap
        decision = ledger.admit("a", lim, now)
        allowed += decision.allowed
        assert decision.allowed or decision.retry_after_s > 0
    assert allowed <= rpm + now * rpm / 60 + 1e-9
