"""Local provider: each replica is a process group on a free 127.0.0.1 port, with a lease file it must see renewed.

The worker stops itself when its lease lapses (``replica.orphan_grace_s``), so no engine outlives a SIGKILLed
controller for long, while a controller restarted within the grace can adopt it (see ``adopt``).

A hot standby is the worker's process group stopped with SIGSTOP (``pause``) and continued with SIGCONT
(``resume``). A stopped worker cannot watch its lease, so ``pause`` starts ``pause_watch`` beside it, which
SIGKILLs the group if the lease lapses while it is stopped and exits as soon as the worker runs again. A stopped
process is still alive for ``alive``; ``terminate`` sends SIGCONT after SIGTERM so a paused worker acts on it.
The worker's start-up milestones are read from the phases file it writes next to its lease (``phases``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from ebbtide.config import PoolSpec, default_threads_per_replica
from ebbtide.engines.base import Engine
from ebbtide.engines.llamacpp import phases_path
from ebbtide.providers.base import Launched
from ebbtide.providers.pause_watch import process_state

__all__ = ["LocalProvider", "free_port"]

PAUSE_SETTLE_S = 2.0


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
        self._grace: dict[str, float] = {}
        self._watchers: set[asyncio.Future[int]] = set()

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
        spawned_at = time.time()
        self._procs[replica_id] = proc
        self._grace[replica_id] = pool.replica.orphan_grace_s
        handle: dict[str, str | int | float] = {"pid": proc.pid, "port": port, "spawned_at": spawned_at}
        return Launched(replica_id, pool.name, f"http://127.0.0.1:{port}", handle)

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
        _signal_group(pid, signal.SIGCONT)  # a paused (hot standby) worker acts on SIGTERM only once continued
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

    async def pause(self, launched: Launched) -> None:
        pid = launched.handle.get("pid")
        if not isinstance(pid, int):
            return
        _signal_group(pid, signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PAUSE_SETTLE_S
        while process_state(pid) not in ("T", None) and loop.time() < deadline:
            await asyncio.sleep(0.005)  # SIGSTOP lands asynchronously: report paused only once it is
        grace = self._grace.get(launched.replica_id, 15.0)
        argv = [sys.executable, "-m", "ebbtide.providers.pause_watch", "--pid", str(pid),
                "--lease", str(self.lease_dir / launched.replica_id), "--timeout", f"{grace:g}"]
        with open(self.log_dir / f"{launched.replica_id}.log", "ab") as log:
            watch = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        task = asyncio.ensure_future(watch.wait())  # reaps it when it exits
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def resume(self, launched: Launched) -> None:
        pid = launched.handle.get("pid")
        if isinstance(pid, int):
            _signal_group(pid, signal.SIGCONT)

    async def stage(self, pool: PoolSpec, engine: Engine, replica_id: str) -> None:
        plan = engine.stage_plan()
        if plan is None:
            return
        log_path = self.log_dir / f"{replica_id}.log"
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *plan.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, **plan.env}, start_new_session=True,
            )  # fmt: skip
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            _signal_group(proc.pid, signal.SIGKILL)
            raise
        if code != 0:
            tail = log_path.read_bytes()[-600:].decode(errors="replace")
            raise RuntimeError(f"staging weights for {replica_id} exited {code}: {tail}")

    async def phases(self, launched: Launched) -> dict[str, Any] | None:
        spawned = launched.handle.get("spawned_at")
        if "pid" not in launched.handle:
            return None
        try:
            written = json.loads(phases_path(self.lease_dir / launched.replica_id).read_text())
        except (OSError, ValueError):
            written = {}
        return {"spawned": spawned, **written} if isinstance(spawned, float | int) else written or None

    async def close(self) -> None:
        self._procs.clear()

    def _forget(self, launched: Launched) -> None:
        self._grace.pop(launched.replica_id, None)
        for path in (self.lease_dir / launched.replica_id, phases_path(self.lease_dir / launched.replica_id)):
            with contextlib.suppress(OSError):
                path.unlink()

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
