"""The replica host's no-orphan guarantees without Ray: ``ReplicaHost`` is a plain class, run in a child.

A host whose controller stops renewing exits and takes its server with it; a SIGKILLed host's server dies by
the parent-death signal; ``stop`` escalates to SIGKILL for a server that ignores SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import psutil

from ebbtide.providers.ray.host import ReplicaHost
from tests.gateway_harness import wait_for

HOST_SCRIPT = """
import asyncio, sys
from ebbtide.providers.ray.host import ReplicaHost

async def main():
    host = ReplicaHost("t-1", float(sys.argv[1]))
    pid = await host.start([sys.executable, "-c", "import signal; signal.pause()"], {}, sys.executable)
    print(pid, host.dir, flush=True)
    await asyncio.Event().wait()  # block until the test kills this process

asyncio.run(main())
"""


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def host_process(grace_s: float) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A child running a ReplicaHost whose server sleeps; yields (child, server pid); cleans both up."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOST_SCRIPT), f"{grace_s:g}"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    pid, host_dir = proc.stdout.readline().split()
    try:
        yield proc, int(pid)
    finally:
        proc.kill()
        proc.wait(10)
        if not gone(int(pid)):
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(host_dir, ignore_errors=True)  # a SIGKILLed host cannot remove its own


def test_host_not_renewed_stops_its_server_and_exits() -> None:
    with host_process(grace_s=1.0) as (proc, server):
        assert not gone(server)
        assert proc.wait(15) == 0
        wait_for(lambda: gone(server), 10, "the server to be stopped with its host")


def test_sigkilled_host_takes_its_server_along() -> None:
    with host_process(grace_s=60.0) as (proc, server):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: gone(server), 10, "parent-death signal to kill the server")


async def test_stop_escalates_to_sigkill_and_removes_the_host_dir() -> None:
    host = ReplicaHost("t-2", 60.0)
    host.grace_s = float("inf")  # in-process: an orphaned host would end this test process
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); signal.pause()")
    pid = await host.start([sys.executable, "-c", stubborn], {}, sys.executable)
    wait_for(lambda: "up" in (host.dir / "server.log").read_text(), 10, "the server ignoring SIGTERM")
    assert await host.running()
    began = time.monotonic()
    code = await host.stop(0.5)
    assert code == -signal.SIGKILL and time.monotonic() - began >= 0.5
    assert gone(pid) and not await host.running() and not host.dir.exists()
