"""Leader lease rules, pure: who holds the lease, when it lapses, and how long the holder may believe it leads.

Several gateways share one lease. A claim renews the holder's lease, takes a lapsed (or never held) lease with the
next fencing token, or changes nothing. Tokens only grow, so an action stamped with an old token can be refused
where it lands (the registry write before every provider action compares it with the current one).

The holder's own view is deliberately shorter than the lease: it believes it leads only until ``sent_at_s + ttl_s``
minus a margin, measured from when it *sent* the renewal that succeeded, on its own monotonic clock. The store
keeps the lease at least ``ttl_s`` after it received that renewal, which is later, so a follower can take the lease
only after the old holder has stopped believing it leads (no two leaders act at once, whatever the network does).
The Redis backend runs the same rules in a Lua script with Redis's expiry; :class:`MemoryLeases` runs them on a
clock a test moves by hand.

Usage::

    lease, took = claim(current, "gw-a", now_s, ttl_s=6)      # the store side, atomically
    until = believe_until(sent_at_s, ttl_s=6)                 # the holder side
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BELIEF_MARGIN", "Lease", "MemoryLeases", "believe_until", "claim", "fenced", "holds"]

BELIEF_MARGIN = 0.25  # the holder stops acting this fraction of the TTL before the lease could lapse


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    token: int
    expires_at_s: float


def holds(lease: Lease | None, who: str, now_s: float) -> bool:
    return lease is not None and lease.holder == who and now_s < lease.expires_at_s


def claim(current: Lease | None, last_token: int, who: str, now_s: float, ttl_s: float,
          may_lead: bool = True) -> tuple[Lease | None, bool]:
    """The lease after ``who`` claims it at ``now_s``, and whether ``who`` just took it (a new term).

    The holder renews (same token, new expiry); anyone may take a lapsed lease with ``last_token + 1`` (tokens
    never go back, even after the lease key is gone); a live lease held by another is unchanged. ``may_lead``
    False (``--gateway-only``) only observes.
    """
    live = current if current is not None and now_s < current.expires_at_s else None
    if live is not None and live.holder == who:
        return Lease(who, live.token, now_s + ttl_s), False
    if live is not None or not may_lead:
        return live, False
    token = max(last_token, current.token if current is not None else 0) + 1
    return Lease(who, token, now_s + ttl_s), True


def believe_until(sent_at_s: float, ttl_s: float) -> float:
    """Until when (holder's monotonic clock) a holder whose renewal sent at ``sent_at_s`` succeeded may act."""
    return sent_at_s + ttl_s * (1.0 - BELIEF_MARGIN)


def fenced(current: Lease | None, who: str, token: int, now_s: float) -> bool:
    """An action stamped ``(who, token)`` may land: that term is the live lease."""
    return holds(current, who, now_s) and current is not None and current.token == token


class MemoryLeases:
    """The lease store in memory, on a clock the caller passes (tests; one process)."""

    def __init__(self) -> None:
        self.lease: Lease | None = None
        self.last_token = 0

    def claim(self, who: str, now_s: float, ttl_s: float, may_lead: bool = True) -> tuple[Lease | None, bool]:
        self.lease, took = claim(self.lease, self.last_token, who, now_s, ttl_s, may_lead)
        if self.lease is not None:
            self.last_token = max(self.last_token, self.lease.token)
        return self.lease, took

    def release(self, who: str, token: int) -> None:
        if self.lease is not None and self.lease.holder == who and self.lease.token == token:
            self.lease = None

    def fenced(self, who: str, token: int, now_s: float) -> bool:
        return fenced(self.lease, who, token, now_s)
