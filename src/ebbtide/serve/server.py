"""Run the gateway: bind first (fail fast on a busy port), start the fleet, serve until SIGINT/SIGTERM, then drain."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from pathlib import Path
from typing import Any

from aiohttp import web
from rich.console import Console

from ebbtide.config import Config
from ebbtide.core.explain import explain
from ebbtide.providers.factory import build_provider
from ebbtide.serve.clock import PolicyClock
from ebbtide.serve.control.runtime import Runtime
from ebbtide.serve.control.store import Store
from ebbtide.serve.gateway.admin import decision_dict
from ebbtide.serve.gateway.app import create_app
from ebbtide.serve.gateway.auth import AuthRefused, Gatekeeper, decide_auth, is_loopback
from ebbtide.serve.gateway.keys import KeyStore

__all__ = ["AuthRefused", "PortInUse", "admin_token", "bind_socket", "is_loopback", "run_server"]


class PortInUse(Exception):
    pass


def admin_token(state_dir: Path) -> str:
    """``EBBTIDE_ADMIN_TOKEN`` if set, else a fresh token written to ``<state-dir>/admin-token`` (mode 0600)."""
    token = os.environ.get("EBBTIDE_ADMIN_TOKEN")
    if token:
        return token
    path = state_dir / "admin-token"
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror} (is another server running there?)") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def console_reporter(console: Console) -> Any:
    def report(kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            console.print(f"[cyan]{data['pool']}[/cyan] replica {data['replica'] or '-'} [bold]{data['kind']}[/bold]"
                          f" {data['detail']}", highlight=False)
        elif kind == "decision" and (data["decision"].direction != "none" or data["decision"].notes):
            console.print(f"[magenta]{data['decision'].pool}[/magenta] {explain(decision_dict(data['decision']))}",
                          highlight=False)
        elif kind == "error":
            console.print(f"[red]{data['where']}:[/red] {data['error']}", highlight=False)

    return report


async def run_server(
    cfg: Config,
    state_dir: Path,
    time_scale: float = 1.0,
    keep_replicas: bool = False,
    console: Console | None = None,
    stop: asyncio.Event | None = None,
    insecure: bool = False,
    dashboard_public: bool = False,
) -> None:
    console = console or Console()
    state_dir.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(state_dir / "ebbtide.db")
    try:
        auth = decide_auth(cfg.gateway.auth, cfg.gateway.host, *keys.counts(), insecure, str(state_dir))
    except AuthRefused:
        keys.close()
        raise
    sock = bind_socket(cfg.gateway.host, cfg.gateway.port)
    token = admin_token(state_dir)
    store = Store(state_dir / "ebbtide.db")
    gatekeeper = Gatekeeper(keys, cfg.gateway.anonymous_class, auth, lambda msg: console.print(msg, highlight=False))
    runtime = Runtime(cfg, store, build_provider(cfg, state_dir), PolicyClock(time_scale),
                      console_reporter(console), gatekeeper=gatekeeper,
                      notice_dir=state_dir / "notices")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(runtime, token, dashboard_public), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        await runtime.start()
        await web.SockSite(runner, sock, shutdown_timeout=5).start()
        runtime.run_background()
        host, port = sock.getsockname()[:2]
        console.print(f"ebbtide serving on http://{host}:{port}  pools: {', '.join(runtime.pools)}  "
                      f"state: {state_dir}", highlight=False)
        console.print(auth.describe(), highlight=False)
        if auth.warning:
            console.print(f"[yellow]warning:[/yellow] {auth.warning}", highlight=False)
        await stop.wait()
        console.print("stopping: draining replicas" if not keep_replicas else "stopping: leaving replicas running")
    finally:
        await runner.cleanup()
        await runtime.close(keep_replicas)
        store.close()
        keys.close()
        sock.close()
