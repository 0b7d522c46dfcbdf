"""The Ray actor that hosts one replica: it runs the engine's server as a child process on its own node.

The actor owns its server: the server gets SIGKILL when the actor's process dies (parent-death signal) and
its lease file is touched only by this actor, so a lost actor or node never leaves an engine behind. The
actor in turn holds a lease from the controller (``renew``): a controller gone for ``grace_s`` stops the
server and the actor, like the local provider's lease files, while a controller restarted sooner adopts the
named actor.

A hot standby is the server's process group stopped with SIGSTOP (``pause``) and continued with SIGCONT
(``resume``); this actor keeps running meanwhile, so the controller's lease is still watched here, and a
SIGTERM to a paused group is followed by SIGCONT so that it is acted on. ``stage`` runs a stage-only command
to completion on this node (a warm standby: weights in this node's cache, no engine).

This module imports no Ray at import time; ``ray.py`` wraps ``ReplicaHost`` in ``ray.remote`` when it
connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ReplicaHost"]

_PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 0.5


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the thread that forked it exits."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ReplicaHost:
    """One replica's home on a Ray node. Usage (through Ray): ``prepare``, ``start(argv, env)``, ``stop``."""

    def __init__(self, replica_id: str, grace_s: float) -> None:
        self.replica_id = replica_id
        self.grace_s = grace_s
        self.dir = Path(tempfile.mkdtemp(prefix=f"ebbtide-{replica_id}-"))
        self.lease = self.dir / "lease"
        self.lease.touch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at: float | None = None
        self._renewed_at = time.monotonic()
        threading.Thread(target=self._watch, name="ebbtide-lease", daemon=True).start()

    async def prepare(self, host: str | None = None) -> dict[str, Any]:
        """Where this actor landed, and a free port on that node for the server."""
        import ray

        self._renewed_at = time.monotonic()
        ip = host or ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ip,
            "port": port,
            "lease": str(self.lease),
            "actor_pid": os.getpid(),
        }

    async def start(self, argv: list[str], env: dict[str, str], driver_python: str) -> int:
        # The driver built argv with its own interpreter path; this node's may live elsewhere.
        self._renewed_at = time.monotonic()
        argv = [sys.executable if i == 0 and a == driver_python else a for i, a in enumerate(argv)]
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **env},
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.spawned_at = time.time()
        return self.proc.pid

    async def stage(self, argv: list[str], env: dict[str, str], driver_python: str) -> int:
        """Run a stage-only command on this node to completion; its exit code."""
        self._renewed_at = time.monotonic()
        argv = [sys.executable if i == 0 and a == driver_python else a for i, a in enumerate(argv)]
        with open(self.dir / "server.log", "ab") as log:
            done = await asyncio.to_thread(
                subprocess.run, argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **env},
                check=False,
            )  # fmt: skip
        return done.returncode

    async def pause(self) -> None:
        self._renewed_at = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGSTOP)

    async def resume(self) -> None:
        self._renewed_at = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGCONT)

    async def phases(self) -> dict[str, Any] | None:
        """The server's start-up milestones (epochs on this node): ``spawned`` and what it wrote."""
        if self.spawned_at is None:
            return None
        try:
            written = json.loads((self.dir / "lease.phases.json").read_text())
        except (OSError, ValueError):
            written = {}
        return {"spawned": self.spawned_at, **written}

    async def running(self) -> bool:
        """Whether the server process still runs; like every controller call, it also renews the lease."""
        self._renewed_at = time.monotonic()
        return self.proc is not None and self.proc.poll() is None

    async def renew(self) -> None:
        self._renewed_at = time.monotonic()

    async def stop(self, grace_s: float) -> int | None:
        """SIGTERM the server's group, SIGKILL after ``grace_s``; its exit code (None: never started)."""
        proc = self.proc
        if proc is None:
            return None
        _signal_group(proc.pid, signal.SIGTERM)
        _signal_group(proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            while proc.poll() is None:
                await asyncio.sleep(0.05)
        shutil.rmtree(self.dir, ignore_errors=True)
        return proc.returncode

    async def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = (self.dir / "server.log").read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode(errors="replace")

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            if time.monotonic() - self._renewed_at > self.grace_s:
                self._orphaned()
                return
            with contextlib.suppress(OSError):
                self.lease.touch()

    def _orphaned(self) -> None:
        """No controller renewed us within the grace: stop the server, then end this actor's process."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            _signal_group(proc.pid, signal.SIGCONT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            _signal_group(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
        os._exit(0)
