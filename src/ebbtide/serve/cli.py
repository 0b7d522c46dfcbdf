"""``ebbtide serve``, ``ebbtide config check``, ``ebbtide status``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ebbtide.config import ConfigError, default_config, load_config

__all__ = ["register"]

config_app = typer.Typer(help="Validate and show configuration.", no_args_is_help=True)


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="ebbtide.yaml to validate.")) -> None:
    """Print the resolved config (defaults filled in), or the problems naming file and field (exit 2)."""
    console = Console()
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print_json(cfg.model_dump_json())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    _ = default_config
