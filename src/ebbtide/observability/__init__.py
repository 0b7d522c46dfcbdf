"""Exports for operators: a Grafana dashboard and Prometheus alert rules on the gateway's metrics (§6)."""

from __future__ import annotations

from ebbtide.observability.alerts import AlertThresholds, alert_rules, alert_rules_yaml
from ebbtide.observability.catalog import metric_catalog
from ebbtide.observability.grafana import dashboard, panel_expressions

__all__ = [
    "AlertThresholds", "alert_rules", "alert_rules_yaml", "dashboard", "metric_catalog",
    "panel_expressions",
]
