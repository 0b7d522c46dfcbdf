"""Per-tenant quotas: requests/min and tokens/min as token buckets, pure (every call takes ``now_s``).

A bucket holds at most one minute's allowance and refills continuously at ``limit / 60`` per second, so a
tenant may burst a full minute's worth and then runs at the limit. Tokens are only known after the answer, so
admission *reserves* an estimate (prompt + ``max_tokens``) and :meth:`QuotaLedger.settle` corrects it with the
real count; a bucket may go negative after a settle, which delays the tenant's next request instead of
forgiving the overrun.

Usage (a driver, e.g. the gateway, owns the ledger and the clock)::

    ledger = QuotaLedger()
    verdict = ledger.admit("acme", QuotaLimits(rpm=60, tpm=20_000), now_s, tokens=est)
    if not verdict.allowed: reply 429 with Retry-After = ceil(verdict.retry_after_s)
    ...
    ledger.settle("acme", limits, now_s, reserved=est, used=actual)
    ledger.prune(now_s)   # now and then: forgets tenants whose buckets are full again
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Bucket", "QuotaDecision", "QuotaLedger", "QuotaLimits", "TenantQuota",
    "check", "refill", "retry_after_header",
]

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """Per-minute limits of one tenant; ``None`` = unlimited."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and value < 1:
                raise ValueError(f"{name} = {value}: must be >= 1 or unset")


@dataclass(frozen=True, slots=True)
class Bucket:
    level: float
    at_s: float


@dataclass(frozen=True, slots=True)
class TenantQuota:
    requests: Bucket | None
    tokens: Bucket | None


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    retry_after_s: float = 0.0
    reason: str = ""


def refill(bucket: Bucket | None, limit_per_min: int, now_s: float) -> Bucket:
    """The bucket at ``now_s``: full when new, never above a minute's allowance; time never runs backwards."""
    if bucket is None:
        return Bucket(float(limit_per_min), now_s)
    elapsed = max(0.0, now_s - bucket.at_s)
    level = min(float(limit_per_min), bucket.level + elapsed * limit_per_min / WINDOW_S)
    return Bucket(level, max(now_s, bucket.at_s))


def _wait_s(level: float, need: float, limit_per_min: int) -> float:
    return max(0.0, (need - level) * WINDOW_S / limit_per_min)


def check(
    state: TenantQuota | None, limits: QuotaLimits, now_s: float, tokens: int = 0
) -> tuple[QuotaDecision, TenantQuota]:
    """Admit one request reserving ``tokens``, or say how long until it fits. A rejection charges nothing."""
    reqs = refill(state.requests if state else None, limits.rpm, now_s) if limits.rpm else None
    toks = refill(state.tokens if state else None, limits.tpm, now_s) if limits.tpm else None
    waits: list[tuple[float, str]] = []
    if reqs is not None and limits.rpm and reqs.level < 1.0:
        waits.append((_wait_s(reqs.level, 1.0, limits.rpm), f"over {limits.rpm} requests/min"))
    # An estimate above a whole minute's allowance could never fit: it waits only for a full bucket.
    need = float(min(tokens, limits.tpm)) if limits.tpm else 0.0
    if toks is not None and limits.tpm and need > 0 and toks.level < need:
        waits.append((_wait_s(toks.level, need, limits.tpm), f"over {limits.tpm} tokens/min"))
    if waits:
        wait, reason = max(waits)
        return QuotaDecision(False, wait, reason), TenantQuota(reqs, toks)
    if reqs is not None:
        reqs = Bucket(reqs.level - 1.0, reqs.at_s)
    if toks is not None:
        toks = Bucket(toks.level - tokens, toks.at_s)
    return QuotaDecision(True), TenantQuota(reqs, toks)


def _is_full(state: TenantQuota, limits: QuotaLimits, now_s: float) -> bool:
    for bucket, limit in ((state.requests, limits.rpm), (state.tokens, limits.tpm)):
        if limit and bucket is not None and refill(bucket, limit, now_s).level < limit:
            return False
    return True


class QuotaLedger:
    """Bucket state per tenant; no clock of its own. :meth:`prune` bounds it to recently active tenants."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[TenantQuota, QuotaLimits]] = {}

    def __len__(self) -> int:
        return len(self._state)

    def admit(self, tenant: str, limits: QuotaLimits, now_s: float, tokens: int = 0) -> QuotaDecision:
        if limits.rpm is None and limits.tpm is None:
            return QuotaDecision(True)
        prev = self._state.get(tenant)
        decision, state = check(prev[0] if prev else None, limits, now_s, tokens)
        self._state[tenant] = (state, limits)
        return decision

    def settle(self, tenant: str, limits: QuotaLimits, now_s: float, reserved: int, used: int) -> None:
        """Charge the real token count minus the reservation (a refund when it was less)."""
        prev = self._state.get(tenant)
        if prev is None or limits.tpm is None or prev[0].tokens is None:
            return
        toks = refill(prev[0].tokens, limits.tpm, now_s)
        toks = Bucket(min(float(limits.tpm), toks.level - (used - reserved)), toks.at_s)
        self._state[tenant] = (TenantQuota(prev[0].requests, toks), limits)

    def prune(self, now_s: float) -> int:
        """Forget tenants whose buckets have refilled (a full bucket equals no state); returns how many."""
        gone = [t for t, (s, lim) in self._state.items() if _is_full(s, lim, now_s)]
        for tenant in gone:
            del self._state[tenant]
        return len(gone)


def retry_after_header(decision: QuotaDecision) -> str:
    """Whole seconds for ``Retry-After``, rounded up and at least 1 (0 would invite an immediate retry)."""
    return str(max(1, math.ceil(decision.retry_after_s)))
