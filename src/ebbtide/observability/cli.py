"""``ebbtide export grafana`` and ``ebbtide export alerts``, added to the shared ``export`` group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ebbtide.config import Config, ConfigError, default_config, load_config
from ebbtide.observability.alerts import AlertThresholds, alert_rules_yaml
from ebbtide.observability.grafana import dashboard

__all__ = ["export_alerts", "export_grafana", "register"]

OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="Write here instead of stdout.")]


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    Console(stderr=True, highlight=False).print(f"wrote {out}")


def _config(path: Path | None) -> Config:
    if path is None:
        return default_config()
    try:
        return load_config(path)
    except ConfigError as exc:
        Console(stderr=True, highlight=False).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def export_grafana(
    out: OutOpt = None,
    title: Annotated[str, typer.Option("--title", help="Dashboard title.")] = "ebbtide",
    uid: Annotated[str, typer.Option("--uid", help="Dashboard uid (stable across re-imports).")]
    = "ebbtide-gateway",
) -> None:
    """Grafana dashboard JSON: latency/TTFT percentiles, queue, replicas, scaling, fallbacks, cost."""
    _write(json.dumps(dashboard(title, uid), indent=2) + "\n", out)


def export_alerts(
    config: Annotated[Path | None, typer.Option("-c", "--config", help="ebbtide.yaml (SLO, pools, prices).")]
    = None,
    out: OutOpt = None,
    latency_p99_s: Annotated[float | None, typer.Option("--latency-p99-s", help="Default: 2 × SLO P95.")]
    = None,
    error_ratio: Annotated[float, typer.Option("--error-ratio", help="5xx share that alerts.")] = 0.01,
    fallback_ratio: Annotated[float, typer.Option("--fallback-ratio", help="Fallback share that alerts.")]
    = 0.1,
    budget: Annotated[float | None, typer.Option("--budget-usd-per-hour", help="Per pool; default 80% of "
                                                 "max_replicas × hourly_usd.")] = None,
) -> None:
    """Prometheus alerting rules (YAML) for the config's SLO and pools (`promtool check rules` them)."""
    thresholds = AlertThresholds(latency_p99_s=latency_p99_s, error_ratio=error_ratio,
                                 fallback_ratio=fallback_ratio, budget_usd_per_hour=budget)
    _write(alert_rules_yaml(_config(config), thresholds), out)


def register(app: typer.Typer) -> None:
    # The `export` group belongs to export/cli.py, which adds it to the app; we only add targets.
    from ebbtide.export.cli import export_app

    export_app.command("grafana")(export_grafana)
    export_app.command("alerts")(export_alerts)
