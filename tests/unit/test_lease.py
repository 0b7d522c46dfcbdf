"""The leader lease rules (core/lease.py) on a hand-moved clock: renew, lapse, take over with a higher token, the
holder's shorter belief, and the fence that refuses a deposed leader's action."""

from __future__ import annotations

from ebbtide.core.lease import BELIEF_MARGIN, MemoryLeases, believe_until, claim, fenced
from ebbtide.serve.clock import ManualClock

TTL = 6.0


def test_first_claim_takes_token_1_and_the_holder_renews_with_the_same_token() -> None:
    clock, leases = ManualClock(100.0), MemoryLeases()
    lease, took = leases.claim("a", clock.now(), TTL)
    assert took and lease is not None and (lease.holder, lease.token) == ("a", 1)
    clock.advance(2)
    lease, took = leases.claim("a", clock.now(), TTL)
    assert not took and lease is not None and lease.token == 1 and lease.expires_at_s == 102 + TTL


def test_a_follower_cannot_take_a_live_lease_but_takes_a_lapsed_one_with_a_higher_token() -> None:
    clock, leases = ManualClock(0.0), MemoryLeases()
    leases.claim("a", clock.now(), TTL)
    clock.advance(TTL - 0.01)
    lease, took = leases.claim("b", clock.now(), TTL)
    assert not took and lease is not None and lease.holder == "a"
    clock.advance(0.02)  # a never renewed: its lease lapsed
    lease, took = leases.claim("b", clock.now(), TTL)
    assert took and lease is not None and (lease.holder, lease.token) == ("b", 2)


def test_the_old_holder_stops_believing_before_anyone_else_can_take_the_lease() -> None:
    clock, leases = ManualClock(0.0), MemoryLeases()
    sent = clock.monotonic()
    leases.claim("a", clock.now(), TTL)
    until = believe_until(sent, TTL)
    assert until == TTL * (1 - BELIEF_MARGIN)
    clock.advance(until)  # a's own view ends here...
    assert leases.claim("b", clock.now(), TTL)[1] is False  # ...while b still cannot take the lease


def test_the_fence_refuses_a_deposed_leaders_token_and_the_gateway_only_follower_never_takes_it() -> None:
    clock, leases = ManualClock(0.0), MemoryLeases()
    leases.claim("a", clock.now(), TTL)
    assert leases.fenced("a", 1, clock.now())
    clock.advance(TTL + 1)
    assert leases.claim("c", clock.now(), TTL, may_lead=False) == (None, False)
    leases.claim("b", clock.now(), TTL)
    assert not leases.fenced("a", 1, clock.now())  # a still thinks token 1: refused
    assert leases.fenced("b", 2, clock.now())
    leases.release("b", 2)
    assert leases.claim("a", clock.now(), TTL)[0].token == 3  # type: ignore[union-attr]


def test_tokens_never_go_back_even_when_the_lease_record_is_gone() -> None:
    lease, took = claim(None, last_token=7, who="a", now_s=0.0, ttl_s=TTL)
    assert took and lease is not None and lease.token == 8
    assert not fenced(None, "a", 8, 0.0)
