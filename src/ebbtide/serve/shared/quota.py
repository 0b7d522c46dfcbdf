"""Tenant quotas shared by every gateway: one Lua script per admission (``core/quota.py``'s rules on Redis time).

Only callers with a limit pay the round trip (~0.1 ms on loopback); everyone else never touches Redis. The token
correction after an answer (``settle``) is queued and sent by the sync loop, not on the request path. When Redis
cannot be reached, admission stays safe instead of open: each gateway meters the tenant locally at its share of
the limit (limit ÷ live gateways, rounded up), so all of them together still admit about the limit; the hot path
stops trying Redis until the sync loop has reached it again (a down Redis costs one failed call, not one per
request).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

import redis

from ebbtide.core.quota import QuotaDecision, QuotaLedger, QuotaLimits
from ebbtide.serve.shared.redis_state import RedisState

__all__ = ["SharedQuota", "split_limits"]


def split_limits(limits: QuotaLimits, gateways: int) -> QuotaLimits:
    """This gateway's share of a tenant's limits while it cannot reach the shared buckets."""
    n = max(1, gateways)
    return QuotaLimits(None if limits.rpm is None else max(1, math.ceil(limits.rpm / n)),
                       None if limits.tpm is None else max(1, math.ceil(limits.tpm / n)))


class SharedQuota:
    def __init__(self, state: RedisState, gateways: Callable[[], int]) -> None:
        self.state = state
        self.gateways = gateways
        self.up = True  # set False by a failed call on the request path; the sync loop sets it True again
        self.local = QuotaLedger()
        self.fallbacks = 0
        self._settles: deque[tuple[str, int, int]] = deque()
        self._lock = threading.Lock()

    def admit(self, tenant: str, limits: QuotaLimits, now_s: float, tokens: int = 0) -> QuotaDecision:
        if self.up:
            try:
                ok, wait, reason = self.state.quota(tenant, limits.rpm, limits.tpm, tokens)
                return QuotaDecision(ok, wait, reason)
            except (redis.ConnectionError, redis.TimeoutError):
                self.up = False
        self.fallbacks += 1
        return self.local.admit(tenant, split_limits(limits, self.gateways()), now_s, tokens)

    def settle(self, tenant: str, limits: QuotaLimits, now_s: float, reserved: int, used: int) -> None:
        if limits.tpm is None or used == reserved:
            return
        self.local.settle(tenant, split_limits(limits, self.gateways()), now_s, reserved, used)
        with self._lock:
            self._settles.append((tenant, limits.tpm, used - reserved))

    def flush(self) -> None:
        """Send queued token corrections (sync loop, worker thread); a connection error keeps the rest."""
        while True:
            with self._lock:
                if not self._settles:
                    return
                tenant, tpm, delta = self._settles[0]
            self.state.quota_settle(tenant, tpm, delta)
            with self._lock:
                self._settles.popleft()

    def prune(self, now_s: float) -> None:
        self.local.prune(now_s)
