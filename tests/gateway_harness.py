"""Run ``ebbtide serve`` as a real subprocess for integration tests, and always clean up after it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

__all__ = ["CHAT_BODY", "GatewayProcess", "LoadLoop", "engine_processes", "gateway", "http_json", "wait_for",
           "write_config"]

CHAT_BODY = {"model": "tiny", "messages": [{"role": "user", "content": "count"}], "max_tokens": 256}


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = predicate()
            if last:
                return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def http_json(
    url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


class LoadLoop:
    """Closed-loop clients, bounded in count (``max_requests``) and time (``max_s``), that record one code per
    request in ``codes``: the HTTP status, or - when no HTTP answer came (reset, closed, refused, timed out) - the
    exception's name, e.g. ``"RemoteDisconnected"``, ``"ConnectionResetError"``, ``"TimeoutError"``.

    ``http_json`` raises on a transport failure, and a client thread that let it escape would stop quietly and
    take its failed request with it; here every request, whatever happens to it, lands in ``codes``. Each
    failure's reason is kept in ``failures``; ``describe()`` is the message for ``assert set(load.codes) == {200}``.
    Leaving the ``with`` block stops the clients (they finish the request in flight).
    """

    def __init__(self, url: str, clients: int, *, max_s: float = 180, max_requests: int = 20_000,
                 path: str = "/v1/chat/completions", body: Any = None, timeout_s: float = 60) -> None:
        self.url, self.path, self.timeout_s = url, path, timeout_s
        self.body = CHAT_BODY if body is None else body
        self.codes: list[int | str] = []
        self.failures: list[tuple[int | str, str]] = []
        self.stop = threading.Event()
        self.deadline = time.monotonic() + max_s
        self._left = max_requests
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _take_one(self) -> bool:
        with self._lock:
            if self.stop.is_set() or time.monotonic() >= self.deadline or self._left <= 0:
                return False
            self._left -= 1
            return True

    def _run(self) -> None:
        while self._take_one():
            code, reason = self._one()
            if code != 200:
                self.failures.append((code, reason))
            self.codes.append(code)

    def _one(self) -> tuple[int | str, str]:
        try:
            status, answer = http_json(self.url + self.path, self.body, timeout=self.timeout_s)
        except urllib.error.URLError as exc:  # urllib wraps refusals and some timeouts: name the cause
            cause = exc.reason if isinstance(exc.reason, BaseException) else exc
            return type(cause).__name__, repr(exc)
        except Exception as exc:  # every way a request can fail is a failed request, never a lost one
            return type(exc).__name__, repr(exc)
        return status, "" if status == 200 else str(answer)[:300]

    def done(self) -> bool:
        """Every client has stopped: the count or time bound was reached, or the loop was told to stop."""
        return not any(t.is_alive() for t in self.threads)

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for code in self.codes:
            counts[str(code)] = counts.get(str(code), 0) + 1
        first = "; ".join(f"{code}: {reason}" for code, reason in self.failures[:5])
        return f"{counts} over {len(self.codes)} requests" + (f"; first failures: {first}" if first else "")

    def __enter__(self) -> LoadLoop:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        give_up = time.monotonic() + self.timeout_s + 10
        for t in self.threads:
            t.join(max(0.0, give_up - time.monotonic()))
        stuck = sum(t.is_alive() for t in self.threads)
        if stuck and exc[0] is None:
            raise AssertionError(f"{stuck} load clients still running {self.timeout_s + 10}s after stop")


def write_config(path: Path, model_path: Path, **overrides: Any) -> Path:
    pool: dict[str, Any] = {
        "name": "tiny",
        "engine": {"kind": "llamacpp", "model": str(model_path), "slots": 2, "threads": 1, "ctx_per_slot": 512},
        "replica": {"startup_timeout_s": 30, "health_interval_s": 0.5, "drain_timeout_s": 10, "stop_grace_s": 3,
                    "orphan_grace_s": 4},
        "scaling": {"min_replicas": 1, "max_replicas": 2, "policies": [{"kind": "queue_depth", "target": 2}]},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(pool.get(key), dict):
            pool[key] = {**pool[key], **value}
        else:
            pool[key] = value
    path.write_text(yaml.safe_dump({"pools": [pool]}))
    return path


def engine_processes(state_dir: Path) -> list[psutil.Process]:
    """Worker processes launched for this state dir (their lease path contains it)."""
    found = []
    marker = str(state_dir)
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            cmd = proc.info["cmdline"] or []
            if proc.info["status"] != psutil.STATUS_ZOMBIE and "ebbtide.engines.llamacpp_worker" in cmd and any(
                marker in part for part in cmd
            ):
                found.append(proc)
    return found


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    log_path: Path

    def admin(self, path: str, body: Any = None) -> tuple[int, Any]:
        token = (self.state_dir / "admin-token").read_text().strip()
        return http_json(self.url + path, body, {"Authorization": f"Bearer {token}"})

    def state(self) -> dict[str, Any]:
        status, body = self.admin("/admin/api/state")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def replicas(self, pool: str, state: str = "ready") -> list[dict[str, Any]]:
        return [r for r in self.state()["pools"][pool]["replicas"] if r["state"] == state]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def gateway(config: Path | None, state_dir: Path, port: int, *args: str, ready_pool: str | None = "tiny",
            env: dict[str, str] | None = None, timeout_s: float = 60) -> Iterator[GatewayProcess]:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "gateway.log"
    argv = [sys.executable, "-m", "ebbtide", "serve", "--port", str(port), "--state-dir", str(state_dir), *args]
    if config is not None:
        argv += ["-c", str(config)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "COLUMNS": "200", **(env or {})})
    gw = GatewayProcess(proc, f"http://127.0.0.1:{port}", state_dir, log_path)
    try:
        if ready_pool is not None:
            def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"gateway exited {proc.returncode}:\n{gw.log()}")
                status, body = gw.admin("/admin/api/state")
                if status == 401:  # a restart rewrites admin-token: this read may have beaten the new file
                    return False
                return any(r["state"] == "ready" for r in body["pools"][ready_pool]["replicas"])
            wait_for(ready, timeout_s, "a ready replica")
        yield gw
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for leftover in engine_processes(state_dir):
            with contextlib.suppress(psutil.Error):
                os.killpg(leftover.pid, signal.SIGKILL)
