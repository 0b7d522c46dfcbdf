"""The runtime's store on Redis: the same methods as ``serve.control.store.Store``, never blocking the event loop.

Writes go to an ordered outbox that the coordinator's sync loop flushes (in a worker thread) every
``state.sync_interval_s``; a write that cannot reach Redis stays queued, in order, until it can. Registry writes
are fenced: they carry this gateway's leader term and land only while it is the live lease (a follower writes
none; a deposed leader's are refused and dropped). Reads of the registry come from the local copy the sync loop
refreshes; the decision log and events are read from Redis (admin API, ``ebbtide decisions``), falling back to
what this gateway wrote itself when Redis is unreachable.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from ebbtide.core.controller import ScaleDecision
from ebbtide.serve.shared.redis_state import RedisState

__all__ = ["RedisStore", "Term"]

Term = tuple[str, int]  # (gateway id, fencing token) of the leader term this gateway holds
Write = Callable[[RedisState], bool]  # True: done (or dropped on purpose); False: Redis refused, drop
RECENT_KEPT = 1000
DEAD_STATES = ("stopped", "failed")


class RedisStore:
    def __init__(self, state: RedisState, path: Path) -> None:
        self.state = state
        self.path = path  # the state dir's db path: the dashboard keeps its series file beside it
        self.term: Term | None = None
        self.rows: dict[str, dict[str, Any]] = {}
        self.refused = 0  # fenced writes refused (this gateway was no longer the leader)
        self._outbox: deque[Write] = deque()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flusher at a time (the sync loop and a fence may both flush)
        self._recent: dict[str, deque[dict[str, Any]]] = {"events": deque(maxlen=RECENT_KEPT),
                                                           "decisions": deque(maxlen=RECENT_KEPT),
                                                           "start_phases": deque(maxlen=RECENT_KEPT)}

    def close(self) -> None:
        self.state.close()

    # -- writes (queued) -----------------------------------------------------------------------------------

    def queue(self, write: Write) -> None:
        """Send ``write`` with the next flush, after everything queued before it."""
        self._queue(write)

    def _queue(self, write: Write) -> None:
        with self._lock:
            self._outbox.append(write)

    def pending(self) -> int:
        return len(self._outbox)

    def flush(self) -> int:
        """Send queued writes in order (worker thread). Stops at the first connection error, keeping the rest."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        sent = 0
        while True:
            with self._lock:
                if not self._outbox:
                    return sent
                write = self._outbox[0]
            try:
                if not write(self.state):
                    self.refused += 1
            except redis.ConnectionError:
                return sent
            except redis.TimeoutError:
                return sent
            with self._lock:
                self._outbox.popleft()
            sent += 1

    def upsert_replica(
        self, replica_id: str, pool: str, state: str, base_url: str, handle: dict[str, Any], requested_at: float,
        ready_at: float | None = None, stopped_at: float | None = None, variant: str = "default",
    ) -> None:
        row = {"replica_id": replica_id, "pool": pool, "state": state, "base_url": base_url, "handle": dict(handle),
               "variant": variant, "requested_at": requested_at, "ready_at": ready_at, "stopped_at": stopped_at}
        term = self.term
        if term is None:  # a follower never writes the registry
            return
        self.rows[replica_id] = row
        payload = json.dumps(row)
        self._queue(lambda rs: rs.fenced_put(term[0], term[1], "replicas", {replica_id: payload}))

    def put_desired(self, pool: str, desired: int, variant: str) -> None:
        term = self.term
        if term is not None:
            payload = json.dumps({"desired": desired, "variant": variant, "token": term[1]})
            self._queue(lambda rs: rs.fenced_put(term[0], term[1], "desired", {pool: payload}))

    def add_event(self, at: float, pool: str, replica_id: str | None, kind: str, detail: str) -> None:
        self._log("events", {"at": at, "pool": pool, "replica_id": replica_id, "kind": kind, "detail": detail})

    def add_decision(self, d: ScaleDecision) -> None:
        self._log("decisions", {
            "at": d.at_s, "pool": d.pool, "current": d.current, "desired": d.desired, "direction": d.direction,
            "min_replicas": d.min_replicas, "max_replicas": d.max_replicas, "bounds_source": d.bounds_source,
            "blocked_by": d.blocked_by, "opinions": [asdict(o) for o in d.opinions], "notes": list(d.notes),
        })

    def add_start_phases(self, at: float, pool: str, replica_id: str, kind: str, phases: dict[str, float]) -> None:
        self._log("start_phases", {"at": at, "pool": pool, "replica_id": replica_id, "kind": kind,
                                   "phases": dict(phases)})

    def start_phases(self, pool: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self._read("start_phases", 0.0, pool, limit)

    def _log(self, log: str, row: dict[str, Any]) -> None:
        self._recent[log].append(row)
        self._queue(lambda rs: rs.append(log, row) > 0)

    # -- reads ----------------------------------------------------------------------------------------------

    def replicas(self, pool: str | None = None, live_only: bool = False) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if (pool is None or r["pool"] == pool)
                and not (live_only and r["state"] in DEAD_STATES)]
        return sorted(rows, key=lambda r: (r["requested_at"], r["replica_id"]))

    def cold_starts_s(self, pool: str, limit: int = 50) -> list[float]:
        rows = [r for r in self.replicas(pool) if r["ready_at"] is not None]
        rows.sort(key=lambda r: r["requested_at"], reverse=True)
        return [float(r["ready_at"] - r["requested_at"]) for r in rows[:limit]]

    def events(self, since: float = 0.0, pool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._read("events", since, pool, limit)

    def decisions(self, since: float = 0.0, pool: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._read("decisions", since, pool, limit)

    def _read(self, log: str, since: float, pool: str | None, limit: int) -> list[dict[str, Any]]:
        try:
            return self.state.read_log(log, since, pool, limit)
        except (redis.ConnectionError, redis.TimeoutError):
            rows = [r for r in self._recent[log] if r["at"] >= since and (pool is None or r["pool"] == pool)]
            return rows[-limit:]
