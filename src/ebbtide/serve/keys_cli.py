"""``ebbtide keys create|list|revoke``: API keys in ``<state-dir>/ebbtide.db`` (read by a running gateway)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ebbtide.serve.gateway.keys import KeyStore, KeyStoreError, parse_key_id
from ebbtide.serve.shared.keys import RedisKeyStore

__all__ = ["keys_app", "register"]

DEFAULT_STATE_DIR = Path(".ebbtide")  # the same default as `ebbtide serve --state-dir`

keys_app = typer.Typer(help="API keys: tenants, priority classes, per-minute limits.", no_args_is_help=True)
StateDirOpt = Annotated[Path, typer.Option("--state-dir", help="The gateway's state dir (holds ebbtide.db).")]
ConfigOpt = Annotated[Path | None, typer.Option("-c", "--config", help="ebbtide.yaml: with state: {backend: "
                                                "redis} the keys live in that Redis (shared by every gateway).")]


def _open(state_dir: Path, config: Path | None) -> KeyStore | RedisKeyStore:
    """The SQLite store in the state dir, or the shared Redis one when the config says ``state: redis``."""
    if config is None:
        return KeyStore(state_dir / "ebbtide.db")
    from ebbtide.config import ConfigError, load_config
    from ebbtide.serve.shared.setup import StateUnavailable, open_redis

    try:
        cfg = load_config(config)
        if cfg.state.backend != "redis":
            return KeyStore(state_dir / "ebbtide.db")
        keys = RedisKeyStore(open_redis(cfg.state))
        keys.refresh(force=True)
        return keys
    except (ConfigError, StateUnavailable) as exc:
        raise _fail(str(exc)) from None


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant of the key (quotas are per tenant).")],
    priority: Annotated[str, typer.Option("--class", help="interactive, batch or a custom class name.")]
    = "interactive",
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute (default: no limit).")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute (default: no limit).")] = None,
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its record as JSON.")] = False,
) -> None:
    """Create a key and print it once: only a salted hash is stored, so it cannot be shown again."""
    store = _open(state_dir, config)
    try:
        key, record = store.create(tenant, priority, rpm, tpm)
    except KeyStoreError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"key": key, **asdict(record)}))
        return
    typer.echo(key)
    Console(stderr=True, highlight=False).print(
        f"key_id {record.key_id} for tenant {tenant!r} (class {priority}); keep it now: it is not shown again"
    )


@keys_app.command("list")
def list_keys(
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    config: ConfigOpt = None,
    active: Annotated[bool, typer.Option("--active", help="Hide revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keys by id (never the secret), with tenant, class, limits and dates."""
    store = _open(state_dir, config)
    try:
        records = store.list_keys(include_revoked=not active)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in records]))
        return
    table = Table(title=f"API keys in {state_dir / 'ebbtide.db'}")
    for col in ("key_id", "tenant", "class", "rpm", "tpm", "created", "revoked"):
        table.add_column(col)
    for r in records:
        table.add_row(r.key_id, r.tenant, r.priority, str(r.rpm or "-"), str(r.tpm or "-"),
                      _when(r.created_at), _when(r.revoked_at))
    Console(highlight=False).print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="KEY_ID from `ebbtide keys list` (or the whole key).")],
    state_dir: StateDirOpt = DEFAULT_STATE_DIR,
    config: ConfigOpt = None,
) -> None:
    """Revoke a key; a running gateway refuses it within a second."""
    try:
        kid = parse_key_id(key_id)
    except KeyStoreError as exc:
        raise _fail(str(exc)) from None
    store = _open(state_dir, config)
    try:
        record = store.revoke(kid)
        existing = store.get(kid)
    finally:
        store.close()
    if record is None:
        if existing is None:
            raise _fail(f"KEY_ID = {kid}: no such key in {state_dir / 'ebbtide.db'}", 1)
        raise _fail(f"KEY_ID = {kid}: already revoked at {_when(existing.revoked_at)}", 1)
    typer.echo(f"revoked {kid} (tenant {record.tenant!r})")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
