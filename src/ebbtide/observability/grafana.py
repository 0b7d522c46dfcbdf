"""``ebbtide export grafana``: one dashboard (Grafana JSON model, schemaVersion 39) on the gateway's metrics.

Rows: application (rate, errors, latency and TTFT percentiles, tokens/s, queue, in-flight), fleet (replicas
by state, scaling decisions, cold starts, retries, fallbacks) and business (cost per hour, per request, per 1M
output tokens, replica-hours). A ``pool`` variable filters every panel; the datasource is chosen at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PANELS", "Panel", "dashboard", "panel_expressions"]

P = '{pool=~"$pool"}'
R = "$__rate_interval"


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    unit: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    description: str = ""


def _quantiles(metric: str, window: str = "5m") -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"histogram_quantile({q}, sum by (pool, le) (rate({metric}_bucket{P}[{window}])))",
         f"{{{{pool}}}} p{p}")
        for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))
    )


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Application", (
        Panel("Requests/s by status", "reqps",
              ((f"sum by (pool, code) (rate(ebbtide_requests_total{P}[{R}]))", "{{pool}} {{code}}"),)),
        Panel("Error ratio (5xx)", "percentunit",
              ((f'sum by (pool) (rate(ebbtide_requests_total{{pool=~"$pool", code=~"5.."}}[5m])) / '
                f"sum by (pool) (rate(ebbtide_requests_total{P}[5m]))", "{{pool}}"),),
              "Share of answers that were 5xx (502 replica lost, 503 no capacity in the deadline)."),
        Panel("Latency P50/P95/P99", "s", _quantiles("ebbtide_request_duration_seconds")),
        Panel("Time to first token P50/P95/P99", "s", _quantiles("ebbtide_ttft_seconds")),
        Panel("Output tokens/s", "short",
              ((f"sum by (pool) (rate(ebbtide_output_tokens_total{P}[{R}]))", "{{pool}}"),)),
        Panel("Queue depth", "short", ((f"sum by (pool) (ebbtide_queue_depth{P})", "{{pool}}"),),
              "Requests waiting for a replica slot."),
        Panel("In flight per replica", "short", ((f"ebbtide_inflight{P}", "{{pool}} {{replica}}"),)),
    )),
    ("Fleet", (
        Panel("Replicas by state", "short",
              ((f"sum by (pool, state) (ebbtide_replicas{P})", "{{pool}} {{state}}"),)),
        Panel("Scaling decisions (per 5 min)", "short",
              ((f"sum by (pool, direction) (increase(ebbtide_scale_decisions_total{P}[5m]))",
                "{{pool}} {{direction}}"),)),
        Panel("Cold start P50/P95", "s", _quantiles("ebbtide_cold_start_seconds", "1h")[:2]),
        Panel("Cold start phases (median, last hour)", "s",
              (("histogram_quantile(0.5, sum by (pool, phase, le) "
                f"(rate(ebbtide_cold_start_phase_seconds_bucket{P}[1h])))", "{{pool}} {{phase}}"),),
              "Where a replica start spends its time: provision, process start, engine import, weights staged, "
              "weights loaded, listening, health OK, first token; wake for a hot standby."),
        Panel("Retries before first byte/s", "reqps",
              ((f"sum by (pool) (rate(ebbtide_retries_total{P}[{R}]))", "{{pool}}"),)),
        Panel("Fallback share", "percentunit",
              ((f"sum by (pool) (rate(ebbtide_fallbacks_total{P}[5m])) / "
                f"sum by (pool) (rate(ebbtide_requests_total{P}[5m]))", "{{pool}}"),),
              "Requests sent to the fallback pool because the primary would miss the SLO."),
    )),
    ("Business", (
        Panel("Cost per hour", "currencyUSD",
              ((f"sum by (pool) (rate(ebbtide_cost_usd_total{P}[5m])) * 3600", "{{pool}}"),)),
        Panel("Cost per request", "currencyUSD",
              ((f"sum by (pool) (rate(ebbtide_cost_usd_total{P}[1h])) / "
                f"sum by (pool) (rate(ebbtide_requests_total{P}[1h]))", "{{pool}}"),)),
        Panel("Cost per 1M output tokens", "currencyUSD",
              ((f"sum by (pool) (rate(ebbtide_cost_usd_total{P}[1h])) / "
                f"sum by (pool) (rate(ebbtide_output_tokens_total{P}[1h])) * 1e6", "{{pool}}"),)),
        Panel("Replica-hours (last 24 h)", "short",
              (('avg_over_time(sum by (pool) (ebbtide_replicas{pool=~"$pool", state!="failed"})[1d:5m])'
                " * 24",
                "{{pool}}"),),
              "Replicas alive (starting, ready or draining) averaged over a day, times 24."),
    )),
)
PANELS: tuple[Panel, ...] = tuple(p for _, row in ROWS for p in row)


def panel_expressions() -> list[str]:
    """Every PromQL query in the dashboard (for validation)."""
    return [expr for panel in PANELS for expr, _ in panel.targets]


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard(title: str = "ebbtide", uid: str = "ebbtide-gateway") -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, pid = 0, 1
    for row_title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, panel in enumerate(row):
            panels.append(_panel(panel, pid, 12 * (i % 2), y + 8 * (i // 2)))
            pid += 1
        y += 8 * ((len(row) + 1) // 2)
    return {
        "title": title,
        "uid": uid,
        "description": "ebbtide gateway: application, fleet and cost (metrics: DESIGN §6).",
        "tags": ["ebbtide", "llm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "pool", "type": "query", "label": "pool", "multi": True, "includeAll": True,
             "allValue": ".*", "current": {"text": "All", "value": "$__all"},
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(ebbtide_requests_total, pool)", "refId": "pool"},
             "definition": "label_values(ebbtide_requests_total, pool)", "refresh": 2, "sort": 1},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }
