"""``ebbtide report --from DIR --out FILE.html``: the dashboard's charts for a finished run, for sharing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

__all__ = ["register", "report"]


def report(
    source: Path = typer.Option(..., "--from", help="A serve state dir or an `ebbtide simulate --out` dir."),
    out: Path = typer.Option(..., "--out", help="The HTML file to write (PNGs go beside it)."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also write one PNG per pool (matplotlib)."),
) -> None:
    """Write one self-contained HTML file (inline script, styles and data) plus PNGs of a finished run."""
    from ebbtide.report.html import render_html
    from ebbtide.report.load import ReportError, load_run

    console = Console(highlight=False, soft_wrap=True)
    try:
        payload = load_run(source)
    except (ReportError, OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(payload))
    console.print(f"wrote {out}")
    if png:
        from ebbtide.plots.report import plot_pools

        for path in plot_pools(payload, out.with_suffix("")):
            console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
