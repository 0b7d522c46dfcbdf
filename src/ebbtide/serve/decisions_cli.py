"""``ebbtide decisions``: the scaling decision log from the store, as a table, JSON or one sentence each."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ebbtide.core.explain import explain
from ebbtide.serve.clock import WallClock
from ebbtide.serve.control.store import StateStore, Store

__all__ = ["parse_since", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now_s: float) -> float:
    """``90s``, ``15m``, ``1h``, ``2d`` before now, or an ISO date/time, or a unix time."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        return now_s - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(f"--since {text!r}: use 90s, 15m, 1h, 2d, an ISO time or a unix time") from None


def decisions(
    since: str = typer.Option("1h", help="How far back: 15m, 1h, 2d, an ISO time or a unix time."),
    pool: str | None = typer.Option(None, help="Only this pool."),
    state_dir: Path = typer.Option(Path(".ebbtide"), help="The state dir of `ebbtide serve` (or a twin run's)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object with a `decisions` list."),
    explain_each: bool = typer.Option(False, "--explain", help="One sentence per decision."),
    config: Path | None = typer.Option(None, "-c", "--config", help="ebbtide.yaml: with state: {backend: redis} "
                                       "the one log every gateway's leader wrote, from that Redis."),
) -> None:
    """Scaling decisions with every policy's opinion, the bounds in force and any cooldown that blocked a change."""
    store = _open(state_dir, config)
    try:
        rows = store.decisions(parse_since(since, WallClock().now()), pool, limit=100_000)
    finally:
        store.close()
    console = Console()
    if as_json:
        for r in rows:
            r["explanation"] = explain(r)
        typer.echo(json.dumps({"decisions": rows}, indent=1))
        return
    if explain_each:
        for r in rows:
            stamp = datetime.fromtimestamp(r["at"]).strftime("%Y-%m-%d %H:%M:%S")
            typer.echo(f"{stamp} {r['pool']}: {explain(r)}")
        return
    table = Table(title=f"{len(rows)} decisions")
    for col in ("time", "pool", "current", "desired", "bounds", "blocked by", "opinions"):
        table.add_column(col)
    for r in rows:
        opinions = "; ".join(f"{o['policy']}={o['desired']}" for o in r["opinions"])
        table.add_row(datetime.fromtimestamp(r["at"]).strftime("%H:%M:%S"), r["pool"], str(r["current"]),
                      str(r["desired"]), f"{r['min_replicas']}-{r['max_replicas']} ({r['bounds_source']})",
                      r["blocked_by"] or "", opinions)
    console.print(table)


def _open(state_dir: Path, config: Path | None) -> StateStore:
    db = state_dir / "ebbtide.db"
    if config is not None:
        from ebbtide.config import ConfigError, load_config
        from ebbtide.serve.shared.setup import StateUnavailable, open_redis
        from ebbtide.serve.shared.store import RedisStore

        try:
            cfg = load_config(config)
            if cfg.state.backend == "redis":
                return RedisStore(open_redis(cfg.state), db)
        except (ConfigError, StateUnavailable) as exc:
            raise typer.BadParameter(str(exc)) from None
    if not db.exists():
        raise typer.BadParameter(f"no store at {db}: is --state-dir right?")
    return Store(db)


def register(app: typer.Typer) -> None:
    app.command("decisions")(decisions)
