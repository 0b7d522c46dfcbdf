"""API keys: tenants, priority classes and per-minute limits, in the state dir's SQLite file (``api_keys``).

A key reads ``ebt_<key_id>_<secret>``; only ``key_id`` (for lookup and display) and a salted PBKDF2 hash of
the whole key are stored, so the database never holds a usable key. :meth:`KeyStore.verify` runs per request:
it answers from an in-memory cache keyed by the key's SHA-256 and re-reads a cheap signature of the table
(rows, revoked rows) at most once per ``recheck_s``, clearing the cache when it changed — so a revocation made
by another process (``ebbtide keys revoke``) takes effect within ``recheck_s`` (1 s by default). Keys are never
deleted (revocation stamps ``revoked_at``), so :meth:`KeyStore.ever_had_keys` stays true once a key was created.

Usage::

    keys = KeyStore(state_dir / "ebbtide.db")
    secret, record = keys.create("acme", priority="batch", rpm=60)   # show ``secret`` once
    keys.verify(presented) -> KeyRecord | None
    keys.revoke(record.key_id); keys.close()
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ebbtide.serve.clock import WallClock

__all__ = ["DEFAULT_CLASSES", "KEY_PREFIX", "KeyRecord", "KeyStore", "KeyStoreError", "check_new_key", "key_hash",
           "key_id_of", "mint_key", "parse_key_id"]

KEY_PREFIX = "ebt_"
DEFAULT_CLASSES = ("interactive", "batch")
# The secret has 256 random bits, so the hash needs no slowness to resist guessing; a modest iteration count
# keeps a cache miss (first use of a key, or after a revocation elsewhere) near a millisecond.
PBKDF2_ITERATIONS = 2_000
_CLASS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_KEY_RE = re.compile(r"^ebt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, tenant TEXT NOT NULL,
    priority TEXT NOT NULL, rpm INTEGER, tpm INTEGER, created_at REAL NOT NULL, revoked_at REAL
);
"""


class KeyStoreError(ValueError):
    """A bad argument to the key store, phrased for the user."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    tenant: str
    priority: str
    rpm: int | None
    tpm: int | None
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def parse_key_id(text: str) -> str:
    """``key_id`` from a bare id or a whole key (``keys revoke`` accepts what the user has at hand)."""
    m = _KEY_RE.match(text)
    if m:
        return m.group(1)
    if re.fullmatch(r"[0-9a-f]{12}", text):
        return text
    raise KeyStoreError(f"KEY_ID = {text!r}: expected 12 hex digits (see `ebbtide keys list`) or a whole key")


def _hash(key: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", key.encode(), salt, PBKDF2_ITERATIONS)


def check_new_key(tenant: str, priority: str, rpm: int | None, tpm: int | None) -> None:
    """Raise :class:`KeyStoreError` naming the option when a new key's fields are not acceptable."""
    if not tenant.strip() or len(tenant) > 128:
        raise KeyStoreError(f"--tenant = {tenant!r}: must be 1-128 characters, not blank")
    if not _CLASS_RE.match(priority):
        raise KeyStoreError(f"--class = {priority!r}: must be interactive, batch or a lowercase name "
                            "([a-z][a-z0-9_-], ≤ 32 characters)")
    for name, value in (("--rpm", rpm), ("--tpm", tpm)):
        if value is not None and value < 1:
            raise KeyStoreError(f"{name} = {value}: must be >= 1 (leave it out for no limit)")


def mint_key() -> tuple[str, str, bytes]:
    """A fresh ``(key_id, key, salt)``; store only ``key_id``, ``salt`` and ``key_hash(key, salt)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}", secrets.token_bytes(16)


def key_hash(key: str, salt: bytes) -> bytes:
    return _hash(key, salt)


def key_id_of(key: str) -> str | None:
    """The ``key_id`` of a well-formed key, else None."""
    m = _KEY_RE.match(key)
    return m.group(1) if m else None


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(row["key_id"], row["tenant"], row["priority"], row["rpm"], row["tpm"], row["created_at"],
                     row["revoked_at"])


class KeyStore:
    """Keys in ``db_path`` (shared with the gateway's :class:`~ebbtide.serve.control.store.Store`, WAL mode).

    ``clock`` (monotonic) paces the revocation re-check; ``wall`` stamps ``created_at``/``revoked_at``.
    """

    def __init__(
        self,
        db_path: Path,
        *,
        recheck_s: float = 1.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._recheck_s = recheck_s
        self._cache_size = cache_size
        self._clock = clock or WallClock().monotonic
        self._wall = wall or WallClock().now
        self._cache: OrderedDict[bytes, KeyRecord | None] = OrderedDict()
        self._signature = self._read_signature()
        self._checked_at = self._clock()

    def close(self) -> None:
        self._db.close()

    def create(
        self, tenant: str, priority: str = "interactive", rpm: int | None = None, tpm: int | None = None
    ) -> tuple[str, KeyRecord]:
        """A new key for ``tenant``: ``(key, record)``. The key is not stored and cannot be shown again."""
        check_new_key(tenant, priority, rpm, tpm)
        key_id, key, salt = mint_key()
        record = KeyRecord(key_id, tenant, priority, rpm, tpm, self._wall())
        self._db.execute(
            "INSERT INTO api_keys (key_id, salt, hash, tenant, priority, rpm, tpm, created_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (key_id, salt, _hash(key, salt), tenant, priority, rpm, tpm, record.created_at),
        )
        self._invalidate()
        return key, record

    def list_keys(self, include_revoked: bool = True) -> list[KeyRecord]:
        sql = "SELECT * FROM api_keys" + ("" if include_revoked else " WHERE revoked_at IS NULL")
        return [_record(r) for r in self._db.execute(sql + " ORDER BY created_at, key_id")]

    def get(self, key_id: str) -> KeyRecord | None:
        row = self._db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return _record(row) if row else None

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke at once in the store; verifiers in other processes follow within ``recheck_s``.

        Returns the revoked record, or None when there is no such key or it was already revoked.
        """
        cur = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (self._wall(), key_id),
        )
        self._invalidate()
        return self.get(key_id) if cur.rowcount else None

    def has_keys(self) -> bool:
        """Any active key? Refreshed like :meth:`verify` (at most once per ``recheck_s``)."""
        return self.counts()[1] > 0

    def ever_had_keys(self) -> bool:
        """Was any key ever created here, revoked or not? Rows are never deleted, so this never turns false.

        The gateway's default auth mode rests on it: a store that ever held a key keeps the gateway on ``keys``,
        so revoking the last key refuses everyone instead of opening the gateway.
        """
        return self.counts()[0] > 0

    def counts(self) -> tuple[int, int]:
        """``(keys ever created, active keys)``, refreshed like :meth:`verify`."""
        self._maybe_recheck()
        total, revoked = self._signature
        return total, total - revoked

    def verify(self, key: str) -> KeyRecord | None:
        """The active record for a presented key, or None (unknown, malformed, wrong secret or revoked)."""
        self._maybe_recheck()
        digest = hashlib.sha256(key.encode(errors="surrogateescape")).digest()
        try:
            found = self._cache[digest]
        except KeyError:
            found = self._lookup(key)
            self._cache[digest] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return found
        self._cache.move_to_end(digest)
        return found

    def _lookup(self, key: str) -> KeyRecord | None:
        m = _KEY_RE.match(key)
        if not m:
            return None
        row = self._db.execute("SELECT * FROM api_keys WHERE key_id = ?", (m.group(1),)).fetchone()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(_hash(key, row["salt"]), row["hash"]):
            return None
        return _record(row)

    def _read_signature(self) -> tuple[int, int]:
        # Keys are never deleted and revocation is one-way: (rows, revoked) changes at each create/revoke.
        row = self._db.execute("SELECT COUNT(*), COUNT(revoked_at) FROM api_keys").fetchone()
        return int(row[0]), int(row[1])

    def _maybe_recheck(self) -> None:
        now = self._clock()
        if now - self._checked_at < self._recheck_s:
            return
        self._checked_at = now
        signature = self._read_signature()
        if signature != self._signature:
            self._signature = signature
            self._cache.clear()

    def _invalidate(self) -> None:
        self._signature = self._read_signature()
        self._cache.clear()
