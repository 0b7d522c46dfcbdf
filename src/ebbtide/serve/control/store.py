"""SQLite state under the state dir: replicas, lifecycle events, scaling decisions (with every opinion) and the
timed phases of each replica start.

Writes are small and synchronous (WAL mode); the gateway calls them from the event loop between awaits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from ebbtide.core.controller import ScaleDecision

__all__ = ["StateStore", "Store"]


class StateStore(Protocol):
    """What the runtime, admin API and dashboard use: this SQLite ``Store`` or ``serve.shared.store.RedisStore``."""

    path: Path

    def upsert_replica(self, replica_id: str, pool: str, state: str, base_url: str, handle: dict[str, Any],
                       requested_at: float, ready_at: float | None = None, stopped_at: float | None = None,
                       variant: str = "default") -> None: ...

    def replicas(self, pool: str | None = None, live_only: bool = False) -> list[dict[str, Any]]: ...

    def add_event(self, at: float, pool: str, replica_id: str | None, kind: str, detail: str) -> None: ...

    def events(self, since: float = 0.0, pool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    def add_decision(self, d: ScaleDecision) -> None: ...

    def decisions(self, since: float = 0.0, pool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    def add_start_phases(self, at: float, pool: str, replica_id: str, kind: str, phases: dict[str, float]) -> None:
        """One timed replica start (serve/control/phases.py): ``kind`` cold, standby-hot/-warm or wake-hot/-warm."""
        ...

    def start_phases(self, pool: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest timed starts, oldest first: {at, pool, replica_id, kind, phases: {phase: seconds}}."""
        ...

    def cold_starts_s(self, pool: str, limit: int = 50) -> list[float]: ...

    def close(self) -> None: ...

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replicas (
    replica_id TEXT PRIMARY KEY, pool TEXT NOT NULL, state TEXT NOT NULL, base_url TEXT NOT NULL,
    handle TEXT NOT NULL, variant TEXT NOT NULL DEFAULT 'default',
    requested_at REAL NOT NULL, ready_at REAL, stopped_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, pool TEXT NOT NULL, replica_id TEXT,
    kind TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, pool TEXT NOT NULL, current INTEGER NOT NULL,
    desired INTEGER NOT NULL, direction TEXT NOT NULL, min_replicas INTEGER NOT NULL, max_replicas INTEGER NOT NULL,
    bounds_source TEXT NOT NULL, blocked_by TEXT, opinions TEXT NOT NULL, notes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS start_phases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, pool TEXT NOT NULL, replica_id TEXT NOT NULL,
    kind TEXT NOT NULL, phases TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions(at);
"""


class Store:
    """Usage: ``store = Store(state_dir / "ebbtide.db")``; ``store.close()`` when done."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def upsert_replica(
        self,
        replica_id: str,
        pool: str,
        state: str,
        base_url: str,
        handle: dict[str, Any],
        requested_at: float,
        ready_at: float | None = None,
        stopped_at: float | None = None,
        variant: str = "default",
    ) -> None:
        self._db.execute(
            "INSERT INTO replicas VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(replica_id) DO UPDATE SET "
            "state=excluded.state, base_url=excluded.base_url, handle=excluded.handle, "
            "ready_at=excluded.ready_at, stopped_at=excluded.stopped_at",
            (replica_id, pool, state, base_url, json.dumps(handle), variant, requested_at, ready_at, stopped_at),
        )

    def replicas(self, pool: str | None = None, live_only: bool = False) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM replicas", []
        clauses = []
        if pool is not None:
            clauses.append("pool = ?")
            args.append(pool)
        if live_only:
            clauses.append("state NOT IN ('stopped', 'failed')")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = [dict(r) for r in self._db.execute(sql + " ORDER BY requested_at, replica_id", args)]
        for r in rows:
            r["handle"] = json.loads(r["handle"])
        return rows

    def add_event(self, at: float, pool: str, replica_id: str | None, kind: str, detail: str) -> None:
        self._db.execute(
            "INSERT INTO events (at, pool, replica_id, kind, detail) VALUES (?,?,?,?,?)",
            (at, pool, replica_id, kind, detail),
        )

    def events(self, since: float = 0.0, pool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._query("events", since, pool, limit)

    def add_decision(self, d: ScaleDecision) -> None:
        self._db.execute(
            "INSERT INTO decisions (at, pool, current, desired, direction, min_replicas, max_replicas, "
            "bounds_source, blocked_by, opinions, notes) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                d.at_s,
                d.pool,
                d.current,
                d.desired,
                d.direction,
                d.min_replicas,
                d.max_replicas,
                d.bounds_source,
                d.blocked_by,
                json.dumps([asdict(o) for o in d.opinions]),
                json.dumps(list(d.notes)),
            ),
        )

    def decisions(self, since: float = 0.0, pool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._query("decisions", since, pool, limit)
        for r in rows:
            r["opinions"] = json.loads(r["opinions"])
            r["notes"] = json.loads(r["notes"])
        return rows

    def add_start_phases(self, at: float, pool: str, replica_id: str, kind: str, phases: dict[str, float]) -> None:
        """One timed start: ``kind`` is cold, standby-hot/-warm or wake-hot/-warm; ``phases`` phase → seconds."""
        self._db.execute(
            "INSERT INTO start_phases (at, pool, replica_id, kind, phases) VALUES (?,?,?,?,?)",
            (at, pool, replica_id, kind, json.dumps(phases)),
        )

    def start_phases(self, pool: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest timed starts, oldest first."""
        rows = self._query("start_phases", 0.0, pool, limit)
        for r in rows:
            r["phases"] = json.loads(r["phases"])
        return rows

    def cold_starts_s(self, pool: str, limit: int = 50) -> list[float]:
        rows = self._db.execute(
            "SELECT ready_at - requested_at FROM replicas WHERE pool = ? AND ready_at IS NOT NULL "
            "ORDER BY requested_at DESC LIMIT ?",
            (pool, limit),
        )
        return [float(r[0]) for r in rows]

    def _query(self, table: str, since: float, pool: str | None, limit: int) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {table} WHERE at >= ?"
        args: list[Any] = [since]
        if pool is not None:
            sql += " AND pool = ?"
            args.append(pool)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with closing(self._db.execute(sql, args)) as cur:
            rows = [dict(r) for r in cur]
        rows.reverse()
        return rows

    def iter_all_events(self) -> Iterator[dict[str, Any]]:
        for r in self._db.execute("SELECT * FROM events ORDER BY id"):
            yield dict(r)
