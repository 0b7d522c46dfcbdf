"""Real Redis servers and several ``ebbtide serve`` processes for the state: redis tests, always cleaned up.

``RedisServer`` runs Debian's ``redis-server`` on a free 127.0.0.1 port in a temp dir, with its append-only file
(fsync always), so a restart keeps what was acknowledged. ``CutProxy`` is one gateway's TCP path to Redis that a
test can cut (every connection closed, new ones refused) and heal: a network partition between that gateway
and Redis while the others keep theirs. ``Gateways`` starts ``ebbtide serve`` processes that share one state dir
(the local provider's replica leases live there, as on one node) and one admin token, each with its own log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.gateway_harness import engine_processes, http_json, wait_for

__all__ = ["ADMIN_TOKEN", "CutProxy", "GatewayProc", "Gateways", "RedisServer", "free_port", "redis_binary"]

ADMIN_TOKEN = "test-admin-token-several-gateways"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    """redis-server's path, installing Debian's package through scripts/fetch-redis when missing; else skip."""
    found = shutil.which("redis-server")
    if found is None:
        subprocess.run([str(REPO / "scripts" / "fetch-redis")], check=False, capture_output=True, timeout=600)
        found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed and scripts/fetch-redis could not install it (no apt-get?)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the several-gateways tests, never skip them
        pytest.skip(message)
    return found


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"]
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            wait_for(lambda: self._up(client), 30, f"redis-server on port {self.port}")
        finally:
            client.close()
        return self

    def _up(self, client: redis.Redis) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)


class CutProxy:
    """A TCP relay 127.0.0.1:port → Redis that a test can cut and heal (one gateway's network path)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.heal()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def heal(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener (new connections are refused) and every relayed connection."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@dataclass
class GatewayProc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(self.url + path, body, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)

    def state(self) -> dict[str, Any]:
        status, body = self.admin("/admin/api/state")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def shared(self) -> dict[str, Any]:
        return self.state()["state"]  # type: ignore[no-any-return]

    def ready(self, pool: str = "tiny") -> list[str]:
        return [r["id"] for r in self.state()["pools"][pool]["replicas"] if r["state"] == "ready"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sigkill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Gateways:
    state_dir: Path
    config: Path
    procs: list[GatewayProc] = field(default_factory=list)

    def start(self, name: str, redis_url: str, *args: str) -> GatewayProc:
        port = free_port()
        log_path = self.state_dir.parent / f"{name}.log"
        argv = [sys.executable, "-m", "ebbtide", "serve", "-c", str(self.config), "--port", str(port),
                "--state-dir", str(self.state_dir), *args]
        env = {**os.environ, "COLUMNS": "200", "EBBTIDE_ADMIN_TOKEN": ADMIN_TOKEN, "EBBTIDE_REDIS_URL": redis_url}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        gw = GatewayProc(name, proc, port, log_path)
        self.procs.append(gw)

        def serving() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gateway {name} exited {proc.returncode}:\n{gw.log()}")
            return gw.admin("/admin/api/state")[0] == 200

        wait_for(serving, 60, f"gateway {name} serving")
        return gw

    def leader(self) -> GatewayProc | None:
        leaders = [g for g in self.procs if g.alive() and g.shared()["leads"]]
        assert len(leaders) <= 1, f"two gateways lead at once: {[g.name for g in leaders]}"
        return leaders[0] if leaders else None

    def stop_all(self) -> None:
        for gw in self.procs:
            if gw.alive():
                os.killpg(gw.proc.pid, signal.SIGTERM)
        for gw in self.procs:
            try:
                gw.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(gw.proc.pid, signal.SIGKILL)
                gw.proc.wait(5)
        for leftover in engine_processes(self.state_dir):
            with contextlib.suppress(Exception):
                os.killpg(leftover.pid, signal.SIGKILL)


@contextlib.contextmanager
def several_gateways(state_dir: Path, config: Path) -> Iterator[Gateways]:
    gws = Gateways(state_dir, config)
    try:
        yield gws
    finally:
        gws.stop_all()


def wait_until(predicate: Any, timeout_s: float, what: str) -> Any:
    return wait_for(predicate, timeout_s, what, interval_s=0.05)


def elapsed_since(t0: float) -> float:
    return time.monotonic() - t0
