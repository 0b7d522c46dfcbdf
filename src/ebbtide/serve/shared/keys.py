"""API keys in Redis, with the same methods as ``serve.gateway.keys.KeyStore``; the hot path never waits on Redis.

Every gateway holds a mirror of all key records (ids, tenants, limits, salts and hashes: never a usable key).
:meth:`verify` answers from the mirror (and a cache of verified keys by SHA-256); :meth:`refresh` — called by the
coordinator's sync loop every ``state.sync_interval_s`` from a worker thread — re-reads the records when
``{ns}:keys:version`` moved, so a revocation made anywhere is refused by every connected gateway within about one
sync interval. Keys are never deleted and revocation is one-way, so a refresh merges: a record Redis lost (a Redis
restarted without its data) is written back from the mirror, and a revocation seen on either side stands.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from ebbtide.serve.clock import Clock, WallClock
from ebbtide.serve.gateway.keys import KeyRecord, check_new_key, key_hash, key_id_of, mint_key
from ebbtide.serve.shared.redis_state import RedisState

__all__ = ["RedisKeyStore"]


def _row(record: KeyRecord, salt: bytes, digest: bytes) -> dict[str, Any]:
    return {**asdict(record), "salt": salt.hex(), "hash": digest.hex()}


def _record(row: dict[str, Any]) -> KeyRecord:
    return KeyRecord(row["key_id"], row["tenant"], row["priority"], row["rpm"], row["tpm"], row["created_at"],
                     row["revoked_at"])


def _merge(mine: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any]:
    if mine is not None and mine["revoked_at"] is not None and theirs["revoked_at"] is None:
        return mine
    return theirs


class RedisKeyStore:
    def __init__(self, state: RedisState, clock: Clock | None = None, cache_size: int = 10_000) -> None:
        self.state = state
        self.clock = clock or WallClock()
        self._cache_size = cache_size
        self._rows: dict[str, dict[str, Any]] = {}
        self._cache: OrderedDict[bytes, KeyRecord | None] = OrderedDict()
        self._version = -1
        self.restored = 0  # records written back after Redis lost them

    def close(self) -> None:
        self.state.close()

    # -- the CLI's and admin's side (one Redis round trip each) ---------------------------------------------

    def create(self, tenant: str, priority: str = "interactive", rpm: int | None = None, tpm: int | None = None,
               ) -> tuple[str, KeyRecord]:
        check_new_key(tenant, priority, rpm, tpm)
        key_id, key, salt = mint_key()
        record = KeyRecord(key_id, tenant, priority, rpm, tpm, self.clock.now())
        self.state.put_key(key_id, _row(record, salt, key_hash(key, salt)))
        self.refresh(force=True)
        return key, record

    def revoke(self, key_id: str) -> KeyRecord | None:
        self.refresh(force=True)
        row = self._rows.get(key_id)
        if row is None or row["revoked_at"] is not None:
            return None
        row = {**row, "revoked_at": self.clock.now()}
        self.state.put_key(key_id, row)
        self.refresh(force=True)
        return _record(row)

    def list_keys(self, include_revoked: bool = True) -> list[KeyRecord]:
        self.refresh()
        records = [_record(r) for r in self._rows.values() if include_revoked or r["revoked_at"] is None]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def get(self, key_id: str) -> KeyRecord | None:
        self.refresh()
        row = self._rows.get(key_id)
        return _record(row) if row else None

    # -- the mirror ------------------------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> bool:
        """Re-read the records if their version moved (raises redis errors: the caller keeps the old mirror)."""
        if not force and self.state.keys_version() == self._version:
            return False
        version, rows = self.state.key_rows()
        merged = {k: _merge(self._rows.get(k), v) for k, v in rows.items()}
        for key_id, row in self._rows.items():
            if key_id not in rows or merged[key_id] is not rows[key_id]:
                merged[key_id] = row
                self.state.put_key(key_id, row, only_new=key_id not in rows)
                self.restored += 1
        self._rows, self._cache, self._version = merged, OrderedDict(), version
        return True

    def counts(self) -> tuple[int, int]:
        rows = self._rows
        return len(rows), sum(1 for r in rows.values() if r["revoked_at"] is None)

    def has_keys(self) -> bool:
        return self.counts()[1] > 0

    def ever_had_keys(self) -> bool:
        return bool(self._rows)

    def verify(self, key: str) -> KeyRecord | None:
        cache = self._cache  # a refresh swaps in a new cache: never clear one another thread is reading
        digest = hashlib.sha256(key.encode(errors="surrogateescape")).digest()
        try:
            found = cache[digest]
        except KeyError:
            found = self._lookup(key)
            cache[digest] = found
            if len(cache) > self._cache_size:
                cache.popitem(last=False)
        return found

    def _lookup(self, key: str) -> KeyRecord | None:
        key_id = key_id_of(key)
        row = self._rows.get(key_id) if key_id else None
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(key_hash(key, bytes.fromhex(row["salt"])), bytes.fromhex(row["hash"])):
            return None
        return _record(row)
