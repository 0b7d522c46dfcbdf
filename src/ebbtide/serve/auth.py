"""Who is calling: an API key (tenant, priority class, quota) or, with no keys configured, an anonymous caller."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from ebbtide.core.quota import QuotaLedger, QuotaLimits
from ebbtide.serve.errors import ApiError
from ebbtide.serve.keys import KeyStore

__all__ = ["ANONYMOUS", "Caller", "Gatekeeper"]


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    priority_class: str
    limits: QuotaLimits
    key_id: str | None = None


ANONYMOUS = Caller("anonymous", "interactive", QuotaLimits())


class Gatekeeper:
    """Authenticates (``caller``) and meters tenants (``admit``/``settle``) with wall-clock token buckets."""

    def __init__(self, keys: KeyStore | None, anonymous_class: str = "interactive") -> None:
        self.keys = keys
        self.anonymous = Caller("anonymous", anonymous_class, QuotaLimits())
        self.ledger = QuotaLedger()
        self._pruned_at = time.monotonic()

    def caller(self, request: web.Request) -> Caller:
        if self.keys is None or not self.keys.has_keys():
            return self.anonymous
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send `Authorization: Bearer <key>`", "missing_api_key")
        record = self.keys.verify(token.strip())
        if record is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_api_key")
        return Caller(record.tenant, record.priority, QuotaLimits(record.rpm, record.tpm), record.key_id)

    def admit(self, caller: Caller, tokens: int) -> None:
        if caller.limits.rpm is None and caller.limits.tpm is None:
            return
        now = time.monotonic()
        verdict = self.ledger.admit(caller.tenant, caller.limits, now, tokens=tokens)
        if now - self._pruned_at > 60:
            self.ledger.prune(now)
            self._pruned_at = now
        if not verdict.allowed:
            raise ApiError(429, f"tenant {caller.tenant!r} is over its quota: {verdict.reason}", "quota_exceeded",
                           retry_after_s=verdict.retry_after_s)

    def settle(self, caller: Caller, reserved: int, used: int) -> None:
        if caller.limits.tpm is not None:
            self.ledger.settle(caller.tenant, caller.limits, time.monotonic(), reserved=reserved, used=used)
