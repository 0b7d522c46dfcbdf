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
from ebbtide.serve.control.store import StateStore, Store
from ebbtide.serve.gateway.admin import decision_dict
from ebbtide.serve.gateway.app import create_app
from ebbtide.serve.gateway.auth import AuthRefused, Gatekeeper, decide_auth, is_loopback
from ebbtide.serve.gateway.keys import KeyStore
from ebbtide.serve.shared.coordinator import fence_provider
from ebbtide.serve.shared.keys import RedisKeyStore
from ebbtide.serve.shared.setup import Shared, StateUnavailable, open_shared

__all__ = ["AuthRefused", "PortInUse", "StateUnavailable", "admin_token", "bind_socket", "is_loopback", "run_server"]


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
        elif kind == "state":
            console.print(f"[blue]{data['message']}[/blue]", highlight=False)
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
    gateway_only: bool = False,
) -> None:
    console = console or Console()
    state_dir.mkdir(parents=True, exist_ok=True)
    report = console_reporter(console)
    shared = open_shared(cfg.state, state_dir, report, not gateway_only) if cfg.state.backend == "redis" else None
    keys: KeyStore | RedisKeyStore = shared.keys if shared else KeyStore(state_dir / "ebbtide.db")
    try:
        auth = decide_auth(cfg.gateway.auth, cfg.gateway.host, *keys.counts(), insecure, str(state_dir))
    except AuthRefused:
        keys.close()
        raise
    sock = bind_socket(cfg.gateway.host, cfg.gateway.port)
    token = admin_token(state_dir)
    store: StateStore
    store = shared.store if shared else Store(state_dir / "ebbtide.db")
    gatekeeper = Gatekeeper(keys, cfg.gateway.anonymous_class, auth, lambda msg: console.print(msg, highlight=False),
                            meter=shared.quota if shared else None)
    provider = build_provider(cfg, state_dir)
    runtime = Runtime(cfg, store, fence_provider(provider, shared.coordinator) if shared else provider,
                      PolicyClock(time_scale), report, gatekeeper=gatekeeper, notice_dir=state_dir / "notices")
    if shared:
        shared.coordinator.attach(runtime)
        keep_replicas = True  # the other gateways still route to them; the next leader adopts them
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(runtime, token, dashboard_public), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        await runtime.start()
        if shared:
            await shared.coordinator.start()
        await web.SockSite(runner, sock, shutdown_timeout=5).start()
        runtime.run_background()
        host, port = sock.getsockname()[:2]
        console.print(f"ebbtide serving on http://{host}:{port}  pools: {', '.join(runtime.pools)}  "
                      f"state: {_describe_state(cfg, state_dir, shared, gateway_only)}", highlight=False)
        console.print(auth.describe(), highlight=False)
        if auth.warning:
            console.print(f"[yellow]warning:[/yellow] {auth.warning}", highlight=False)
        await stop.wait()
        console.print("stopping: draining replicas" if not keep_replicas else "stopping: leaving replicas running")
    finally:
        if shared:
            await shared.coordinator.close()
        await runner.cleanup()
        await runtime.close(keep_replicas)
        store.close()
        keys.close()
        sock.close()


def _describe_state(cfg: Config, state_dir: Path, shared: Shared | None, gateway_only: bool) -> str:
    if shared is None:
        return str(state_dir)
    role = "gateway-only follower" if gateway_only else (
        "leader" if shared.coordinator.leads() else f"follower of {shared.coordinator.leader or 'nobody yet'}")
    return f"redis {cfg.state.namespace} as {shared.coordinator.me} ({role}); local files in {state_dir}"
