"""``ebbtide export alerts``: Prometheus alerting rules for a config's SLO, pools and prices.

Alerts: latency P95 over the SLO (critical) and P99 over its own threshold, TTFT P95 over the SLO, 5xx ratio,
queue growing, replicas failing, no ready replica while requests arrive, fallback share, and cost burn above a
per-pool hourly budget (default: 80% of running ``max_replicas`` at ``hourly_usd``, i.e. near the cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ebbtide.config import Config

__all__ = ["AlertThresholds", "alert_rules", "alert_rules_yaml"]

GROUP = "ebbtide"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertThresholds:
    """Thresholds not in the config. ``latency_p99_s`` None = 2 × the SLO's P95 target."""

    latency_p99_s: float | None = None
    error_ratio: float = 0.01
    queue_min: int = 10
    fallback_ratio: float = 0.10
    budget_fraction: float = 0.8
    budget_usd_per_hour: float | None = None  # one figure for every pool; overrides budget_fraction


def _rule(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "service": "ebbtide"},
        "annotations": {"summary": summary, "description": description},
    }


def _q(q: float, metric: str) -> str:
    return f"histogram_quantile({q}, sum by (pool, le) (rate({metric}_bucket[5m])))"


def _budgets(cfg: Config, t: AlertThresholds) -> list[tuple[str, float]]:
    out = []
    for pool in cfg.pools:
        budget = t.budget_usd_per_hour
        if budget is None:
            budget = t.budget_fraction * pool.scaling.max_replicas * pool.replica.hourly_usd
        if budget > 0:
            out.append((pool.name, round(budget, 4)))
    return out


def alert_rules(cfg: Config, thresholds: AlertThresholds | None = None) -> dict[str, Any]:
    """The rules file as a dict (``groups: [...]``), ready for ``yaml.safe_dump``."""
    t = thresholds or AlertThresholds()
    slo = cfg.slo
    p99 = t.latency_p99_s if t.latency_p99_s is not None else 2 * slo.latency_p95_s
    rules = [
        _rule("EbbtideLatencyP95OverSLO",
              f"{_q(0.95, 'ebbtide_request_duration_seconds')} > {slo.latency_p95_s:g}", "5m", "critical",
              "Pool {{ $labels.pool }}: P95 latency over the SLO",
              f"P95 latency is {{{{ $value | humanizeDuration }}}} (SLO {slo.latency_p95_s:g} s)."),
        _rule("EbbtideLatencyP99OverSLO",
              f"{_q(0.99, 'ebbtide_request_duration_seconds')} > {p99:g}", "5m", "warning",
              "Pool {{ $labels.pool }}: P99 latency high",
              f"P99 latency is {{{{ $value | humanizeDuration }}}} (threshold {p99:g} s)."),
        _rule("EbbtideTTFTP95OverSLO",
              f"{_q(0.95, 'ebbtide_ttft_seconds')} > {slo.ttft_p95_s:g}", "5m", "warning",
              "Pool {{ $labels.pool }}: P95 time to first token over the SLO",
              f"P95 TTFT is {{{{ $value | humanizeDuration }}}} (SLO {slo.ttft_p95_s:g} s)."),
        _rule("EbbtideErrorRatioHigh",
              'sum by (pool) (rate(ebbtide_requests_total{code=~"5.."}[5m])) / '
              f"sum by (pool) (rate(ebbtide_requests_total[5m])) > {t.error_ratio:g}", "5m", "critical",
              "Pool {{ $labels.pool }}: 5xx answers",
              "{{ $value | humanizePercentage }} of answers are 5xx (no capacity in the deadline or replicas "
              "lost mid-stream)."),
        _rule("EbbtideQueueGrowing",
              f"deriv(ebbtide_queue_depth[5m]) > 0 and ebbtide_queue_depth > {t.queue_min}", "5m", "warning",
              "Pool {{ $labels.pool }}: queue growing",
              "The queue has grown for 5 minutes ({{ $value }} waiting): scaling is not keeping up or is "
              "blocked (max_replicas, cooldown, paused)."),
        _rule("EbbtideReplicasFailing",
              'sum by (pool) (ebbtide_replicas{state="failed"}) > 0', "2m", "warning",
              "Pool {{ $labels.pool }}: replicas failing",
              "{{ $value }} replica(s) failed (startup timeout, crash or health checks); see "
              "`ebbtide status` and the events."),
        _rule("EbbtideNoReadyReplica",
              'sum by (pool) (ebbtide_replicas{state="ready"}) == 0 and on (pool) '
              "sum by (pool) (rate(ebbtide_requests_total[5m])) > 0", "5m", "critical",
              "Pool {{ $labels.pool }}: requests but no ready replica",
              "Requests arrive and no replica has been ready for 5 minutes."),
        _rule("EbbtideFallbackRateHigh",
              "sum by (pool) (rate(ebbtide_fallbacks_total[10m])) / "
              f"sum by (pool) (rate(ebbtide_requests_total[10m])) > {t.fallback_ratio:g}", "10m", "warning",
              "Pool {{ $labels.pool }}: overflow to the fallback pool",
              "{{ $value | humanizePercentage }} of requests go to the fallback pool: the primary is "
              "undersized or scales too late."),
    ]
    for pool, budget in _budgets(cfg, t):
        rules.append(_rule(
            "EbbtideCostBurnHigh",
            f'sum by (pool) (rate(ebbtide_cost_usd_total{{pool="{pool}"}}[1h])) * 3600 > {budget:g}', "30m",
            "warning", f"Pool {pool}: spending over ${budget:g}/h",
            f"Pool {pool} spent {{{{ $value | printf \"%.2f\" }}}} $/h over the last hour "
            f"(budget {budget:g}).",
        ))
    return {"groups": [{"name": GROUP, "rules": rules}]}


def alert_rules_yaml(cfg: Config, thresholds: AlertThresholds | None = None) -> str:
    header = "# Prometheus alerting rules for ebbtide (generated by `ebbtide export alerts`).\n"
    return header + yaml.safe_dump(alert_rules(cfg, thresholds), sort_keys=False, width=120)
