"""Guard a paused (SIGSTOPped) replica: a stopped worker cannot watch its own lease, so this does it meanwhile.

Usage (the local provider starts it when it pauses a replica)::

    python -m ebbtide.providers.pause_watch --pid PID --lease FILE --timeout S

Every ``POLL_S`` it checks the worker: gone → exit; no longer stopped once it was seen stopped (resumed: its
own lease thread is back), or never seen stopped within ``SETTLE_S`` → exit; lease not renewed for
``--timeout`` seconds (or removed) → SIGKILL the worker's process group (a stopped process would not act on
SIGTERM) and exit. So a controller killed while a replica is paused leaves nothing
behind, exactly as for a running replica. It imports only the standard library (~20 ms to start).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["POLL_S", "SETTLE_S", "main", "process_state"]

POLL_S = 0.25
SETTLE_S = 5.0


def process_state(pid: int) -> str | None:
    """The state letter of ``/proc/<pid>/stat`` (``T`` = stopped), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]  # the command name may hold spaces and parentheses


def _lease_lapsed(lease: Path, timeout_s: float) -> bool:
    try:
        return time.time() - lease.stat().st_mtime > timeout_s
    except FileNotFoundError:
        return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ebbtide.providers.pause_watch")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--lease", type=Path, required=True)
    p.add_argument("--timeout", type=float, required=True)
    args = p.parse_args(argv)
    began, seen_stopped = time.monotonic(), False
    while True:
        state = process_state(args.pid)
        if state is None or state in ("Z", "X"):
            return 0
        seen_stopped = seen_stopped or state == "T"
        if state != "T" and (seen_stopped or time.monotonic() - began > SETTLE_S):
            return 0  # resumed: the worker watches its lease again
        if _lease_lapsed(args.lease, args.timeout):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(args.pid, signal.SIGKILL)
            print(f"pause_watch: lease {args.lease} lapsed while pid {args.pid} was paused: killed", file=sys.stderr)
            return 0
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main())
