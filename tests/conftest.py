"""Shared fixtures: a tiny real GGUF model, free 127.0.0.1 ports, llama.cpp workers that never leak."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ebbtide.testing import make_tiny_llama_gguf


@pytest.fixture(scope="session")
def tiny_gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~0.5 MB random-weight llama GGUF; a real llama.cpp server loads it in ~0.05 s."""
    return make_tiny_llama_gguf(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bound to 0, then released)."""
    return _free_port()


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def worker_process(tmp_path: Path, tiny_gguf_path: Path) -> Iterator[StartWorker]:
    """Factory: ``worker_process(model=..., slots=2, lease=path, lease_timeout_s=..., extra=[...])``.

    Starts ``python -m ebbtide.engines.llamacpp_worker`` (1 thread) in its own process group on a free port
    and returns at once, before it is ready. Every worker started is SIGKILLed with its group at teardown.
    """
    started: list[WorkerProcess] = []

    def start(
        model: Path | None = None,
        *,
        slots: int = 2,
        ctx_per_slot: int = 512,
        lease: Path | None = None,
        lease_timeout_s: float = 15.0,
        extra: list[str] | None = None,
    ) -> WorkerProcess:
        port = _free_port()
        argv = [
            sys.executable, "-m", "ebbtide.engines.llamacpp_worker",
            "--model", str(model or tiny_gguf_path), "--port", str(port),
            "--slots", str(slots), "--threads", "1", "--ctx-per-slot", str(ctx_per_slot),
        ]  # fmt: skip
        if lease is not None:
            argv += ["--lease", str(lease), "--lease-timeout", f"{lease_timeout_s:g}"]
        if extra:
            argv += ["--", *extra]
        err = tmp_path / f"worker-{port}.stderr"
        with err.open("wb") as sink:
            proc = subprocess.Popen(argv, stdout=sink, stderr=sink, start_new_session=True)
        worker = WorkerProcess(proc, port, err)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            _kill_group(worker.proc)
