"""The ``ebbtide`` command. Each area registers its own commands: ``<area>/cli.py`` defines ``register(app)``."""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="ebbtide",
    help="Autoscaling control plane, OpenAI-compatible gateway and digital twin for self-hosted LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One line per area; each module defines ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = [
    "ebbtide.serve.cli",
    "ebbtide.serve.decisions_cli",
    "ebbtide.plan.cli",
    "ebbtide.export.cli",
    "ebbtide.sim.cli",
    "ebbtide.serve.keys_cli",
    "ebbtide.loadtest.cli",
    "ebbtide.observability.cli",
    "ebbtide.demo.cli",
    "ebbtide.report.cli",
    "ebbtide.weights.cli",
]


def _register_all() -> None:
    if getattr(app, "_ebbtide_registered", False):
        return
    app._ebbtide_registered = True  # type: ignore[attr-defined]
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def main() -> None:
    _register_all()
    app()
