"""Tenant quotas shared by every gateway: ``core/quota.py``'s buckets in Redis, one Lua script per admission that
cannot be served from a local lease.

A round trip per request blocks the event loop for it (~0.1-0.3 ms on loopback: measured, it cut a gateway's
requests/s to a third for a metered tenant), so an admission also *leases* a little of the bucket: up to
``LEASE_FRACTION`` of a minute's allowance (requests and tokens), only what is there. Later requests spend the
lease locally; what is left after ``LEASE_S`` goes back to the bucket (queued, sent by the sync loop). At most
``LEASE_FRACTION`` × limit per gateway is ever held away from the others, so several gateways together stay
within a fraction of a percent of the limit, and a small limit (rpm < 1 / LEASE_FRACTION) leases nothing: every
request is one exact round trip. The token correction after an answer (``settle``) is queued too.

When Redis cannot be reached, admission stays safe instead of open: each gateway meters the tenant locally at
its share of the limit (limit ÷ live gateways, rounded up), so all of them together still admit about the
limit; the request path stops trying Redis until the sync loop has reached it again (a down Redis costs one
failed call, not one per request).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis

from ebbtide.core.quota import QuotaDecision, QuotaLedger, QuotaLimits
from ebbtide.serve.shared.redis_state import RedisState

__all__ = ["LEASE_FRACTION", "LEASE_S", "SharedQuota", "split_limits"]

LEASE_FRACTION = 1 / 600  # of a minute's allowance: 0.1 s of refill
LEASE_S = 1.0


def split_limits(limits: QuotaLimits, gateways: int) -> QuotaLimits:
    """This gateway's share of a tenant's limits while it cannot reach the shared buckets."""
    n = max(1, gateways)
    return QuotaLimits(None if limits.rpm is None else max(1, math.ceil(limits.rpm / n)),
                       None if limits.tpm is None else max(1, math.ceil(limits.tpm / n)))


@dataclass
class Lease:
    limits: QuotaLimits
    requests: int
    tokens: int
    until_s: float


class SharedQuota:
    def __init__(self, state: RedisState, gateways: Callable[[], int]) -> None:
        self.state = state
        self.gateways = gateways
        self.up = True  # set False by a failed call on the request path; the sync loop sets it True again
        self.local = QuotaLedger()
        self.fallbacks = 0
        self.round_trips = 0
        self.leases: dict[str, Lease] = {}
        self._queue: deque[Callable[[RedisState], None]] = deque()
        self._lock = threading.Lock()

    def admit(self, tenant: str, limits: QuotaLimits, now_s: float, tokens: int = 0) -> QuotaDecision:
        if self._spend_lease(tenant, limits, now_s, tokens):
            return QuotaDecision(True)
        if self.up:
            try:
                return self._admit_remote(tenant, limits, now_s, tokens)
            except (redis.ConnectionError, redis.TimeoutError):
                self.up = False
        self.fallbacks += 1
        return self.local.admit(tenant, split_limits(limits, self.gateways()), now_s, tokens)

    def _spend_lease(self, tenant: str, limits: QuotaLimits, now_s: float, tokens: int) -> bool:
        lease = self.leases.get(tenant)
        if lease is None or lease.limits != limits or now_s >= lease.until_s:
            return False
        if (limits.rpm and lease.requests < 1) or (limits.tpm and lease.tokens < tokens):
            return False
        lease.requests -= 1 if limits.rpm else 0
        lease.tokens -= tokens if limits.tpm else 0
        return True

    def _admit_remote(self, tenant: str, limits: QuotaLimits, now_s: float, tokens: int) -> QuotaDecision:
        self.round_trips += 1
        want_r = int((limits.rpm or 0) * LEASE_FRACTION)
        want_t = int((limits.tpm or 0) * LEASE_FRACTION)
        ok, wait, reason, got_r, got_t = self.state.quota(tenant, limits.rpm, limits.tpm, tokens, want_r, want_t)
        if got_r or got_t:
            self._give_back(tenant)
            self.leases[tenant] = Lease(limits, got_r, got_t, now_s + LEASE_S)
        return QuotaDecision(ok, wait, reason)

    def expire(self, now_s: float) -> None:
        """Give back what old leases did not spend (event loop; the refunds are sent by the next flush)."""
        for tenant in [t for t, lease in self.leases.items() if now_s >= lease.until_s]:
            self._give_back(tenant)

    def _give_back(self, tenant: str) -> None:
        lease = self.leases.pop(tenant, None)
        if lease is None or (lease.requests <= 0 and lease.tokens <= 0):
            return
        rpm, tpm = lease.limits.rpm or 0, lease.limits.tpm or 0
        left_r, left_t = max(0, lease.requests), max(0, lease.tokens)
        self._enqueue(lambda rs: rs.quota_refund(tenant, rpm, tpm, left_r, left_t))

    def settle(self, tenant: str, limits: QuotaLimits, now_s: float, reserved: int, used: int) -> None:
        if limits.tpm is None or used == reserved:
            return
        self.local.settle(tenant, split_limits(limits, self.gateways()), now_s, reserved, used)
        tpm = limits.tpm
        self._enqueue(lambda rs: rs.quota_settle(tenant, tpm, used - reserved))

    def _enqueue(self, send: Callable[[RedisState], None]) -> None:
        with self._lock:
            self._queue.append(send)

    def flush(self) -> None:
        """Send queued refunds and corrections (sync loop, worker thread); a connection error keeps the rest."""
        while True:
            with self._lock:
                if not self._queue:
                    return
                send = self._queue[0]
            send(self.state)
            with self._lock:
                self._queue.popleft()

    def prune(self, now_s: float) -> None:
        self.local.prune(now_s)
