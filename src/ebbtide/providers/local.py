"""Local provider: each replica is a process group on a free 127.0.0.1 port, with a lease file it must see renewed.

The worker stops itself when its lease lapses (``replica.orphan_grace_s``), so no engine outlives a SIGKILLed
controller for long, while a controller restarted within the grace can adopt it (see ``adopt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

import psutil

from ebbtide.config import PoolSpec, default_threads_per_replica
from ebbtide.engines.base import Engine
from ebbtide.providers.base import Launched

__all__ = ["LocalProvider", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalProvider:
    """Usage: ``provider = LocalProvider(state_dir)``; ``launched = await provider.launch(pool, "default-1")``."""

    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.lease_dir = state_dir / "leases"
        self.log_dir = state_dir / "logs"
        self.lease_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    async def launch(self, pool: PoolSpec, engine: Engine, replica_id: str) -> Launched:
        if not engine.launches:
            url = str(getattr(engine, "base_url", ""))
            return Launched(replica_id, pool.name, url, {"external": 1})
        port = free_port()
        spec = getattr(engine, "spec", pool.engine)
        threads = getattr(spec, "threads", None) or default_threads_per_replica(pool.scaling.max_replicas)
        lease = self.lease_dir / replica_id
        lease.touch()
        plan = engine.launch_plan(port, threads, lease)
        argv = self._with_lease_timeout(plan.argv, pool.replica.orphan_grace_s)
        with open(self.log_dir / f"{replica_id}.log", "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **plan.env},
                start_new_session=True,
            )
        self._procs[replica_id] = proc
        return Launched(replica_id, pool.name, f"http://127.0.0.1:{port}", {"pid": proc.pid, "port": port})

    @staticmethod
    def _with_lease_timeout(argv: list[str], grace_s: float) -> list[str]:
        """The pool's ``orphan_grace_s`` wins over the engine's default lease timeout."""
        if "--lease" not in argv:
            return argv
        if "--lease-timeout" in argv:
            i = argv.index("--lease-timeout")
            return [*argv[: i + 1], f"{grace_s:g}", *argv[i + 2 :]]
        return [*argv[:3], "--lease-timeout", f"{grace_s:g}", *argv[3:]]

    async def terminate(self, launched: Launched, grace_s: float) -> None:
        pid = launched.handle.get("pid")
        if not isinstance(pid, int):
            return
        proc = self._procs.pop(launched.replica_id, None)
        _signal_group(pid, signal.SIGTERM)
        if await self._wait_exit(pid, proc, grace_s):
            self._forget(launched)
            return
        _signal_group(pid, signal.SIGKILL)
        await self._wait_exit(pid, proc, 5.0)
        self._forget(launched)

    async def alive(self, launched: Launched) -> bool:
        pid = launched.handle.get("pid")
        if not isinstance(pid, int):
            return True
        proc = self._procs.get(launched.replica_id)
        if proc is not None:
            return proc.returncode is None
        return _is_our_worker(pid, launched.replica_id)

    async def renew(self, launched: Launched) -> None:
        if "pid" in launched.handle:
            with contextlib.suppress(OSError):
                (self.lease_dir / launched.replica_id).touch()

    async def close(self) -> None:
        self._procs.clear()

    def _forget(self, launched: Launched) -> None:
        with contextlib.suppress(OSError):
            (self.lease_dir / launched.replica_id).unlink()

    async def _wait_exit(self, pid: int, proc: asyncio.subprocess.Process | None, timeout_s: float) -> bool:
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
                return True
            except TimeoutError:
                return False
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            if not psutil.pid_exists(pid) or _is_zombie(pid):
                return True
            await asyncio.sleep(0.05)
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _is_zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _is_our_worker(pid: int, replica_id: str) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and any(replica_id in part for part in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
