"""API key store and CLI: hashed at rest, verified from a cache, revoked elsewhere → refused within 1 s."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ebbtide.serve import keys_cli
from ebbtide.serve.gateway.keys import KeyStore, KeyStoreError, parse_key_id


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ebbtide.db"


def test_create_verify_roundtrip_and_record_fields(db: Path) -> None:
    store = KeyStore(db, wall=lambda: 1_700_000_000.0)
    key, record = store.create("acme", "batch", rpm=60, tpm=1000)
    assert key.startswith(f"ebt_{record.key_id}_")
    got = store.verify(key)
    assert got == record
    assert got is not None
    assert (got.tenant, got.priority, got.rpm, got.tpm) == ("acme", "batch", 60, 1000)
    assert got.created_at == 1_700_000_000.0
    assert store.has_keys()
    store.close()


def test_only_a_salted_hash_is_stored(db: Path) -> None:
    store = KeyStore(db)
    key_a, _ = store.create("acme")
    store.create("acme")
    store.close()
    wal = db.with_name("ebbtide.db-wal")
    raw = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    secret = key_a.split("_", 2)[2]
    assert secret.encode() not in raw
    rows = sqlite3.connect(db).execute("SELECT salt, hash FROM api_keys").fetchall()
    assert len({r[0] for r in rows}) == 2, "each key has its own salt"
    assert all(len(r[1]) == 32 for r in rows)


@pytest.mark.parametrize("bad", ["", "nope", "ebt_", "ebt_000000000000_" + "A" * 43])
def test_unknown_or_malformed_keys_are_refused(db: Path, bad: str) -> None:
    store = KeyStore(db)
    store.create("acme")
    assert store.verify(bad) is None
    store.close()


def test_wrong_secret_for_a_real_key_id_is_refused(db: Path) -> None:
    store = KeyStore(db)
    key, _ = store.create("acme")
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.verify(forged) is None
    assert store.verify(key) is not None
    store.close()


def test_revocation_in_another_process_applies_within_recheck(db: Path) -> None:
    clock = ManualClock()
    gateway = KeyStore(db, clock=clock, recheck_s=1.0)
    cli = KeyStore(db)
    key, record = cli.create("acme")
    clock.now += 1.0  # the gateway learns the key exists at its next re-check
    assert gateway.verify(key) == record
    assert cli.revoke(record.key_id) is not None
    clock.now += 0.999
    assert gateway.verify(key) == record, "still served from cache before the re-check is due"
    clock.now += 0.001
    assert gateway.verify(key) is None
    gateway.close()
    cli.close()


def test_revoke_in_the_same_store_applies_at_once(db: Path) -> None:
    store = KeyStore(db, clock=ManualClock())
    key, record = store.create("acme")
    assert store.verify(key) is not None
    assert store.revoke(record.key_id) is not None
    assert store.verify(key) is None
    assert store.revoke(record.key_id) is None, "already revoked"
    assert not store.has_keys()
    store.close()


def test_cache_is_bounded(db: Path) -> None:
    store = KeyStore(db, cache_size=3)
    key, _ = store.create("acme")
    for i in range(10):
        store.verify(f"garbage-{i}")
    assert len(store._cache) == 3
    assert store.verify(key) is not None
    store.close()


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"tenant": " "}, "--tenant"),
    ({"tenant": "a", "priority": "Not Valid"}, "--class"),
    ({"tenant": "a", "rpm": 0}, "--rpm"),
    ({"tenant": "a", "tpm": -5}, "--tpm"),
])
def test_create_rejects_bad_arguments(db: Path, kwargs: dict[str, object], fragment: str) -> None:
    store = KeyStore(db)
    with pytest.raises(KeyStoreError, match=fragment):
        store.create(**kwargs)  # type: ignore[arg-type]
    store.close()


def test_parse_key_id_accepts_id_or_whole_key() -> None:
    assert parse_key_id("0123456789ab") == "0123456789ab"
    assert parse_key_id("ebt_0123456789ab_" + "x" * 43) == "0123456789ab"
    with pytest.raises(KeyStoreError, match="KEY_ID"):
        parse_key_id("zz")


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    runner, app = CliRunner(), typer.Typer()
    keys_cli.register(app)
    sd = str(tmp_path / "sd")
    out = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--class", "batch", "--rpm", "30",
                              "--state-dir", sd, "--json"])
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout)
    assert created["key"].startswith("ebt_") and created["priority"] == "batch" and created["rpm"] == 30
    listed = runner.invoke(app, ["keys", "list", "--state-dir", sd, "--json"])
    assert [r["key_id"] for r in json.loads(listed.stdout)] == [created["key_id"]]
    assert created["key"] not in listed.stdout
    revoked = runner.invoke(app, ["keys", "revoke", created["key_id"], "--state-dir", sd])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    again = runner.invoke(app, ["keys", "revoke", created["key_id"], "--state-dir", sd])
    assert again.exit_code == 1 and "already revoked" in again.output
    missing = runner.invoke(app, ["keys", "revoke", "0123456789ab", "--state-dir", sd])
    assert missing.exit_code == 1 and "no such key" in missing.output
    store = KeyStore(Path(sd) / "ebbtide.db")
    assert store.verify(created["key"]) is None
    store.close()
