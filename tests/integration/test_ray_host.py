"""The replica host's no-orphan guarantees without Ray: ``ReplicaHost`` is a plain class, run in a child.

A host whose controller stops renewing exits and takes its server with it; a SIGKILLed host's server dies by
the parent-death signal; ``stop`` escalates to SIGKILL for a server that ignores SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from ebbtide.providers.ray_host import ReplicaHost
from tests.gateway_harness import wait_for

HOST_SCRIPT = """
import asyncio, sys
from ebbtide.providers.ray_host import ReplicaHost

async def main():
    host = ReplicaHost("t-1", float(sys.argv[1]))
    pid = await host.start([sys.executable, "-c", "import time; time.sleep(120)"], {}, sys.executable)
    print(pid, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def start_host(grace_s: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOST_SCRIPT), f"{grace_s:g}"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_host_not_renewed_stops_its_server_and_exits() -> None:
    proc, server = start_host(grace_s=1.0)
    try:
        assert not gone(server)
        assert proc.wait(15) == 0
        wait_for(lambda: gone(server), 10, "the server to be stopped with its host")
    finally:
        proc.kill()


def test_sigkilled_host_takes_its_server_along() -> None:
    proc, server = start_host(grace_s=60.0)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: gone(server), 10, "parent-death signal to kill the server")
    finally:
        proc.kill()
        if not gone(server):
            os.kill(server, signal.SIGKILL)


async def test_stop_escalates_to_sigkill_and_removes_the_host_dir() -> None:
    host = ReplicaHost("t-2", 60.0)
    host.grace_s = float("inf")  # in-process: an orphaned host would end this test process
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(120)")
    pid = await host.start([sys.executable, "-c", stubborn], {}, sys.executable)
    wait_for(lambda: "up" in (host.dir / "server.log").read_text(), 10, "the server ignoring SIGTERM")
    assert await host.running()
    began = time.monotonic()
    code = await host.stop(0.5)
    assert code == -signal.SIGKILL and time.monotonic() - began >= 0.5
    assert gone(pid) and not await host.running() and not host.dir.exists()
