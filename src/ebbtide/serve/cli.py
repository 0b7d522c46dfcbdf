"""``ebbtide serve``, ``ebbtide config check``, ``ebbtide status``."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import typer
import uvloop
from rich.console import Console
from rich.table import Table

from ebbtide.config import Config, ConfigError, default_config, load_config

__all__ = ["load_or_default", "register"]

config_app = typer.Typer(help="Validate and show configuration.", no_args_is_help=True)
DEFAULT_STATE_DIR = Path(".ebbtide")


def load_or_default(config: Path | None, console: Console) -> Config:
    if config is None:
        return default_config()
    try:
        return load_config(config)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="ebbtide.yaml to validate.")) -> None:
    """Print the resolved config (defaults filled in), or the problems naming file and field (exit 2)."""
    console = Console()
    cfg = load_or_default(file, console)
    console.print_json(cfg.model_dump_json())


def serve(
    config: Path | None = typer.Option(None, "-c", "--config", help="ebbtide.yaml; default: the embedded pool."),
    host: str | None = typer.Option(None, help="Bind address (default from config: 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default from config: 8080)."),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="SQLite store, admin token, replica logs and leases."),
    time_scale: float = typer.Option(1.0, min=0.001, help="Policy seconds per wall second (60 = 1 min per s)."),
    keep_replicas: bool = typer.Option(False, help="On stop, leave replicas running for a restarted controller."),
    auth: str | None = typer.Option(None, help="none | keys (default from config gateway.auth; see docs)."),
    insecure: bool = typer.Option(False, help="Allow auth none on a non-loopback bind (anyone can call)."),
    dashboard_public: bool = typer.Option(False, help="Serve /dashboard without the admin token."),
    gateway_only: bool = typer.Option(False, help="With state: redis, serve and follow but never take the "
                                      "leader lease (never start or stop replicas)."),
) -> None:
    """Run the OpenAI-compatible gateway over an autoscaled fleet of engine replicas."""
    from ebbtide.providers.ray.provider import RayUnavailable
    from ebbtide.serve.server import AuthRefused, PortInUse, StateUnavailable, run_server

    console = Console()
    cfg = load_or_default(config, console)
    if auth not in (None, "none", "keys"):
        raise typer.BadParameter(f"--auth = {auth!r}: expected none or keys")
    overrides = (("host", host), ("port", port), ("auth", auth))
    gateway = cfg.gateway.model_copy(update={k: v for k, v in overrides if v is not None})
    cfg = cfg.model_copy(update={"gateway": gateway})
    if gateway_only and cfg.state.backend != "redis":
        raise typer.BadParameter("--gateway-only needs state: {backend: redis} (followers share a leader's fleet)")
    try:
        uvloop.run(run_server(cfg, state_dir, time_scale, keep_replicas, console, insecure=insecure,
                               dashboard_public=dashboard_public, gateway_only=gateway_only))
    except PortInUse as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (AuthRefused, StateUnavailable) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except RayUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def admin_get(url: str, state_dir: Path, path: str) -> Any:
    token = os.environ.get("EBBTIDE_ADMIN_TOKEN") or _read_token(state_dir)
    req = urllib.request.Request(url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _read_token(state_dir: Path) -> str:
    try:
        return (state_dir / "admin-token").read_text().strip()
    except OSError:
        raise typer.BadParameter(f"no admin token at {state_dir / 'admin-token'}: is --state-dir right?") from None


def status(
    url: str = typer.Option("http://127.0.0.1:8080", help="The running gateway."),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="Where `ebbtide serve` keeps its admin token."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replicas, queue, the last decision and the timed phases of recent replica starts of each pool, from the
    running server's admin API."""
    console = Console()
    try:
        state = admin_get(url, state_dir, "/admin/api/state")
    except (urllib.error.URLError, OSError) as exc:
        console.print(f"[red]error:[/red] cannot reach {url}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps(state))
        return
    from ebbtide.core.explain import explain
    from ebbtide.serve.control.phases import PHASE_COLUMNS, phase_rows

    for name, pool in state["pools"].items():
        standby = pool.get("standby") or {}
        reserve = f", standby {standby['count']} {standby['tier']}" if standby.get("count") else ""
        table = Table(title=f"pool {name}: desired {pool['desired']}{reserve}, queue {pool['queue_depth']}"
                      + (" (paused)" if pool["paused"] else ""))
        for col in ("replica", "state", "in flight", "slots", "url"):
            table.add_column(col)
        for r in pool["replicas"]:
            tier = f" ({r['standby']})" if r.get("standby") else ""
            table.add_row(r["id"], r["state"] + tier, str(r["inflight"]), str(r["slots"]), r["url"])
        console.print(table)
        if pool["last_decision"]:
            console.print(f"last decision: {explain(pool['last_decision'])}", highlight=False)
        if pool.get("starts"):
            starts = Table(title=f"pool {name}: replica starts, seconds per phase")
            for col in PHASE_COLUMNS:
                starts.add_column(col.replace("_", " "), justify="left" if col in ("replica", "start") else "right")
            for row in phase_rows(pool["starts"]):
                starts.add_row(*row)
            console.print(starts)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("serve")(serve)
    app.command("status")(status)
