"""A throwaway Ray cluster on this machine, for tests, benchmarks and trying the Ray provider.

Each node is one ``ray start`` in its own process group and temp dir, on its own loopback address
(127.0.0.2, 127.0.0.3, ...): Ray swaps 127.0.0.1 for the machine's outward address but keeps other 127/8
addresses, so all traffic stays on loopback. ``kill_node`` takes a node down the way a lost machine goes
(SIGKILL to every process of it, actors and their engine servers included); ``close`` kills whatever is left
and removes the temp dirs, so no Ray process outlives the cluster, even when a test fails. Only processes
this object started are touched (``ray stop`` would stop every Ray node of the user on the machine).

Usage::

    with LocalRayCluster(root, [NodeSpec("head", 1, {"head": 1}), NodeSpec("worker", 1, {"worker": 1})]) as c:
        ... c.address ...   # "127.0.0.2:PORT"
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

__all__ = ["LocalRayCluster", "NodeSpec"]

OBJECT_STORE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class NodeSpec:
    name: str
    num_cpus: float
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class _Node:
    spec: NodeSpec
    ip: str
    temp_dir: Path
    pgid: int | None = None
    node_id: str | None = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalRayCluster:
    """The first node is the head. A node whose ``ray start`` fails is retried: on a busy host Ray's agents
    can miss the raylet's fixed 15 s start window."""

    def __init__(
        self, root: Path, nodes: list[NodeSpec], *, attempts: int = 3, start_timeout_s: float = 180
    ) -> None:
        self.root = root
        self.attempts = attempts
        self.start_timeout_s = start_timeout_s
        self.ray_bin = str(Path(sys.executable).with_name("ray"))
        self.nodes = {
            spec.name: _Node(spec, f"127.0.0.{i + 2}", root / f"n{i}") for i, spec in enumerate(nodes)
        }
        self.head = next(iter(self.nodes.values()))
        self.port = _free_port(self.head.ip)
        self.starts: list[tuple[str, int, float]] = []  # (node, attempt, seconds) of each successful start

    @property
    def address(self) -> str:
        return f"{self.head.ip}:{self.port}"

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        for node in self.nodes.values():
            if node.pgid is None:
                self.start_node(node.spec.name)

    def start_node(self, name: str) -> float:
        """Start (or restart) one node; returns how long ``ray start`` took."""
        node = self.nodes[name]
        argv = self._argv(node)
        # Actors' scratch dirs (tempfile) go under the node's dir, so close() removes even a killed node's.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TMPDIR": str(node.temp_dir / "tmp")}
        last = ""
        for attempt in range(1, self.attempts + 1):
            shutil.rmtree(node.temp_dir, ignore_errors=True)
            (node.temp_dir / "tmp").mkdir(parents=True)
            log = node.temp_dir.with_suffix(".log")
            began = time.monotonic()
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            node.pgid = proc.pid
            try:
                code = proc.wait(self.start_timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            if code == 0:
                node.node_id = self._node_id(node)
                self.starts.append((name, attempt, time.monotonic() - began))
                return self.starts[-1][2]
            last = log.read_text(errors="replace")[-3000:]
            self._kill(node)
        raise RuntimeError(f"ray start for node {name} failed {self.attempts} times; last output:\n{last}")

    def _argv(self, node: _Node) -> list[str]:
        argv = [
            self.ray_bin, "start", "--node-ip-address", node.ip, "--num-cpus", f"{node.spec.num_cpus:g}",
            "--resources", json.dumps(node.spec.resources), "--temp-dir", str(node.temp_dir),
            "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats",
        ]  # fmt: skip
        if node is self.head:
            return [*argv, "--head", "--port", str(self.port), "--include-dashboard", "false",
                    "--dashboard-port", str(_free_port(node.ip))]  # fmt: skip
        return [*argv, "--address", self.address]

    def _node_id(self, node: _Node) -> str | None:
        for proc in self._processes(node):
            with contextlib.suppress(psutil.Error):
                for part in proc.cmdline():
                    if part.startswith("--node_id="):
                        return str(part.split("=", 1)[1])
        return None

    def _processes(self, node: _Node) -> list[psutil.Process]:
        """The node's daemons (its process group) and everything they started (workers, actors' servers)."""
        if node.pgid is None:
            return []
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(proc.pid) == node.pgid:
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
        return list(found.values())

    def kill_node(self, name: str) -> None:
        """SIGKILL every process of the node, as if its machine vanished; wait until they are gone."""
        node = self.nodes[name]
        self._kill(node)

    def _kill(self, node: _Node) -> None:
        procs = self._processes(node)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        node.pgid, node.node_id = None, None

    def alive_processes(self) -> int:
        return sum(len(self._processes(n)) for n in self.nodes.values())

    def close(self) -> None:
        for node in reversed(list(self.nodes.values())):
            self._kill(node)
        shutil.rmtree(self.root, ignore_errors=True)
