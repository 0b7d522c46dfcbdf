"""Who is calling: an API key (tenant, priority class, quota) or, with auth ``none``, an anonymous caller.

The auth mode is decided once at startup (:func:`decide_auth`, logged as e.g. ``auth: keys (default: 3 keys in
store, 1 active)``) and can only tighten while running: with the *default* ``none`` (loopback bind, no key ever
created), the first key created — by ``ebbtide keys create`` in another process — switches the gateway to
``keys`` at the key store's next re-check (≤ ``recheck_s``, 1 s), never back. With ``keys`` in force, zero active
keys means every request gets 401: revoking the last key never opens the gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

from ebbtide.core.quota import QuotaDecision, QuotaLedger, QuotaLimits
from ebbtide.serve.clock import Clock, WallClock
from ebbtide.serve.gateway.errors import ApiError
from ebbtide.serve.gateway.keys import KeyRecord

__all__ = ["ANONYMOUS", "AuthDecision", "AuthMode", "AuthRefused", "Caller", "Gatekeeper", "KeyDirectory",
           "TenantMeter", "decide_auth", "is_loopback"]

AuthMode = Literal["none", "keys"]


class KeyDirectory(Protocol):
    """What the gateway reads per request: the SQLite ``KeyStore`` or the Redis-backed ``RedisKeyStore``."""

    def verify(self, key: str) -> KeyRecord | None: ...

    def counts(self) -> tuple[int, int]: ...

    def ever_had_keys(self) -> bool: ...


class TenantMeter(Protocol):
    """Token buckets per tenant: ``core.quota.QuotaLedger`` in one process, ``SharedQuota`` across gateways."""

    def admit(self, tenant: str, limits: QuotaLimits, now_s: float, tokens: int = 0) -> QuotaDecision: ...

    def settle(self, tenant: str, limits: QuotaLimits, now_s: float, reserved: int, used: int) -> None: ...

    def prune(self, now_s: float) -> object: ...


class AuthRefused(Exception):
    """Startup refused: on this host the auth mode would leave the gateway open, or unusable, by accident."""


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    priority_class: str
    limits: QuotaLimits
    key_id: str | None = None


ANONYMOUS = Caller("anonymous", "interactive", QuotaLimits())


@dataclass(frozen=True, slots=True)
class AuthDecision:
    mode: AuthMode
    reason: str
    follows_store: bool = False  # the default 'none': the first key created switches to 'keys'
    warning: str | None = None

    def describe(self) -> str:
        return f"auth: {self.mode} ({self.reason})"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _store_phrase(total: int, active: int) -> str:
    return f"{total} key{'' if total == 1 else 's'} in store, {active} active"


def decide_auth(
    setting: AuthMode | None, host: str, total_keys: int, active_keys: int, insecure: bool = False,
    state_dir: str = ".ebbtide",
) -> AuthDecision:
    """The auth mode for ``gateway.auth = setting`` on ``host``, given the key store's counts at startup.

    Raises :class:`AuthRefused` for ``none`` on a non-loopback host without ``insecure``, and for ``keys`` on a
    non-loopback host with no active key (every request would get 401: almost surely a forgotten key).
    """
    loopback = is_loopback(host)
    store = _store_phrase(total_keys, active_keys)
    create = f"`ebbtide keys create --tenant NAME --state-dir {state_dir}`"
    if setting == "none":
        if not loopback and not insecure:
            raise AuthRefused(
                f"refusing to listen on {host} with gateway.auth = none: anyone who can reach it could call it. "
                f"Bind 127.0.0.1, use API keys (gateway.auth: keys; create one with {create}), or pass --insecure "
                "to serve it open on purpose")
        reason = "gateway.auth = none" + ("" if loopback else f"; {host} is not loopback, allowed by --insecure")
        return AuthDecision("none", reason + (f"; the {store} are ignored" if total_keys else ""))
    if setting == "keys":
        reason = f"gateway.auth = keys; {store}"
    elif total_keys:
        reason = f"default: {store}"
    elif not loopback:
        reason = f"default: {host} is not loopback; {store}"
    else:
        return AuthDecision("none", "default: loopback bind and no key ever created; the first `ebbtide keys "
                            "create` switches it to keys within 1 s", follows_store=True)
    if active_keys == 0 and not loopback:
        raise AuthRefused(
            f"refusing to listen on {host}: auth is keys ({reason}) and no API key is active, so every request "
            f"would get 401. Create one with {create}, bind 127.0.0.1, or serve it open on purpose with "
            "gateway.auth: none (or --auth none) and --insecure")
    warning = None if active_keys else f"no API key is active: every request gets 401 until {create}"
    return AuthDecision("keys", reason, warning=warning)


class Gatekeeper:
    """Authenticates (``caller``) and meters tenants (``admit``/``settle``) with wall-clock token buckets.

    ``decision`` defaults to ``none`` without a key store and ``keys`` with one; ``on_change`` hears the new
    :meth:`AuthDecision.describe` when the default ``none`` switches to ``keys`` while running.
    """

    def __init__(
        self,
        keys: KeyDirectory | None,
        anonymous_class: str = "interactive",
        decision: AuthDecision | None = None,
        on_change: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        meter: TenantMeter | None = None,
    ) -> None:
        if decision is None:
            decision = AuthDecision("none", "no key store") if keys is None else AuthDecision("keys", "key store")
        if decision.mode == "keys" and keys is None:
            raise ValueError("auth mode 'keys' needs a KeyStore")
        self.keys = keys
        self.decision = decision
        self._on_change = on_change or (lambda message: None)
        self.anonymous = Caller("anonymous", anonymous_class, QuotaLimits())
        self.ledger: TenantMeter = meter or QuotaLedger()
        self.clock = clock or WallClock()
        self._pruned_at = self.clock.monotonic()

    def caller(self, request: web.Request) -> Caller:
        keys = self.keys
        if self.decision.mode == "none":
            if not (self.decision.follows_store and keys is not None and keys.ever_had_keys()):
                return self.anonymous
            self._switch_to_keys(keys)
        assert keys is not None  # 'keys' mode always has a store (checked in __init__)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send `Authorization: Bearer <key>`", "missing_api_key")
        record = keys.verify(token.strip())
        if record is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_api_key")
        return Caller(record.tenant, record.priority, QuotaLimits(record.rpm, record.tpm), record.key_id)

    def _switch_to_keys(self, keys: KeyDirectory) -> None:
        # One-way: nothing ever switches 'keys' back to 'none' (keys are never deleted, so this stays true).
        self.decision = AuthDecision("keys", f"a key was created while running; {_store_phrase(*keys.counts())}")
        self._on_change(self.decision.describe())

    def admit(self, caller: Caller, tokens: int) -> None:
        if caller.limits.rpm is None and caller.limits.tpm is None:
            return
        now = self.clock.monotonic()
        verdict = self.ledger.admit(caller.tenant, caller.limits, now, tokens=tokens)
        if now - self._pruned_at > 60:
            self.ledger.prune(now)
            self._pruned_at = now
        if not verdict.allowed:
            raise ApiError(429, f"tenant {caller.tenant!r} is over its quota: {verdict.reason}", "quota_exceeded",
                           retry_after_s=verdict.retry_after_s)

    def settle(self, caller: Caller, reserved: int, used: int) -> None:
        if caller.limits.tpm is not None:
            self.ledger.settle(caller.tenant, caller.limits, self.clock.monotonic(), reserved=reserved, used=used)
