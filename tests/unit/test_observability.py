"""Grafana dashboard and Prometheus alert exports: structure, metric names against the gateway's registry,
PromQL checked by promtool (``scripts/fetch-promtool`` puts it in a cache dir), alert behaviour by
``promtool test rules``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from ebbtide.config import Config
from ebbtide.observability import alert_rules, alert_rules_yaml, dashboard, metric_catalog
from ebbtide.observability.alerts import AlertThresholds
from ebbtide.observability.grafana import panel_expressions

DESIGN_METRICS = {
    "ebbtide_requests_total", "ebbtide_request_duration_seconds_bucket", "ebbtide_ttft_seconds_bucket",
    "ebbtide_output_tokens_total", "ebbtide_queue_depth", "ebbtide_inflight", "ebbtide_replicas",
    "ebbtide_scale_decisions_total", "ebbtide_cold_start_seconds_bucket", "ebbtide_cost_usd_total",
}
PROMQL_WORDS = {"by", "on", "and", "or", "unless", "without", "sum", "rate", "increase", "deriv", "le"}


def promtool() -> str:
    cache = Path(os.environ.get("EBBTIDE_CACHE_DIR", Path.home() / ".cache" / "ebbtide"))
    for candidate in (shutil.which("promtool"), cache / "prometheus" / "usr" / "bin" / "promtool"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    message = "promtool not found: run scripts/fetch-promtool (scripts/test does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def priced_config() -> Config:
    return Config.model_validate({
        "pools": [
            {"name": "big", "replica": {"hourly_usd": 17.0}, "scaling": {"max_replicas": 5},
             "fallback": "small"},
            {"name": "small", "replica": {"hourly_usd": 1.0}},
        ],
        "slo": {"latency_p95_s": 3.0, "ttft_p95_s": 0.5},
    })


def _metrics_in(expr: str) -> set[str]:
    return set(re.findall(r"\bebbtide_[a-z_]+\b", expr))


def test_catalog_has_every_design_metric() -> None:
    catalog = metric_catalog()
    assert set(catalog) >= DESIGN_METRICS
    assert catalog["ebbtide_requests_total"] == {"pool", "code"}
    assert catalog["ebbtide_request_duration_seconds_bucket"] == {"pool", "le"}


DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "schemaVersion": {"type": "integer", "minimum": 36},
        "panels": {"type": "array", "minItems": 10, "items": {
            "type": "object",
            "required": ["id", "type", "title", "gridPos"],
            "properties": {
                "type": {"enum": ["row", "timeseries"]},
                "gridPos": {"type": "object", "required": ["h", "w", "x", "y"], "properties": {
                    "w": {"type": "integer", "minimum": 1, "maximum": 24},
                    "x": {"type": "integer", "minimum": 0, "maximum": 23}}},
                "targets": {"type": "array", "items": {"type": "object", "required": ["refId", "expr"]}},
            },
        }},
        "templating": {"type": "object", "required": ["list"]},
    },
}


def test_dashboard_structure() -> None:
    doc = json.loads(json.dumps(dashboard()))  # what `export grafana` prints must survive JSON
    jsonschema.validate(doc, DASHBOARD_SCHEMA)
    panels = doc["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] == "timeseries":
            assert p["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
    titles = " ".join(p["title"] for p in panels)
    for needed in ("Latency", "Time to first token", "Queue", "Replicas", "Fallback", "Cost per 1M"):
        assert needed in titles


def _check_labels(expr: str, catalog: dict[str, frozenset[str]]) -> None:
    for metric, matchers in re.findall(r"\b(ebbtide_[a-z_]+)\{([^}]*)\}", expr):
        for label in re.findall(r"([a-z_]+)\s*[=!]~?", matchers):
            assert label in catalog[metric], f"{metric} has no label {label!r}: {expr}"
    used = _metrics_in(expr)
    allowed = set().union(*(catalog[m] for m in used))
    for group in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
        for label in (x.strip() for x in group.split(",")):
            assert label in allowed, f"grouping by {label!r} that none of {used} has: {expr}"


def test_panels_and_alerts_query_only_known_metrics_and_labels() -> None:
    catalog = metric_catalog()
    exprs = panel_expressions() + [r["expr"] for r in alert_rules(priced_config())["groups"][0]["rules"]]
    referenced = set().union(*(_metrics_in(e) for e in exprs))
    assert referenced <= set(catalog), f"unknown metrics: {referenced - set(catalog)}"
    for expr in exprs:
        _check_labels(expr, catalog)


def test_label_check_catches_a_wrong_label() -> None:
    with pytest.raises(AssertionError, match="no label 'tenant'"):
        _check_labels('sum(rate(ebbtide_requests_total{tenant="a"}[5m]))', metric_catalog())


def test_dashboard_promql_parses_with_promtool(tmp_path: Path) -> None:
    tool = promtool()
    exprs = [e.replace("$__rate_interval", "5m").replace("$pool", ".*") for e in panel_expressions()]
    rules = [{"record": f"ebbtide:panel_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("cfg", [None, "priced"])
def test_alert_rules_pass_promtool_check(tmp_path: Path, cfg: str | None) -> None:
    tool = promtool()
    config = priced_config() if cfg else Config.model_validate({"pools": [{"name": "p"}]})
    path = tmp_path / "alerts.yml"
    path.write_text(alert_rules_yaml(config))
    out = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    names = [r["alert"] for r in yaml.safe_load(path.read_text())["groups"][0]["rules"]]
    assert {"EbbtideLatencyP99OverSLO", "EbbtideQueueGrowing", "EbbtideReplicasFailing",
            "EbbtideFallbackRateHigh"} <= set(names)
    assert names.count("EbbtideCostBurnHigh") == (2 if cfg else 0), "one per priced pool"


def _alert(name: str, labels: dict[str, str], rules: dict[str, object]) -> dict[str, object]:
    rule = next(r for r in rules["groups"][0]["rules"] if r["alert"] == name)  # type: ignore[index]
    return {"exp_labels": {**labels, **rule["labels"]}}


def test_alerts_fire_when_they_should_promtool_test_rules(tmp_path: Path) -> None:
    tool = promtool()
    cfg = priced_config()
    rules = alert_rules(cfg, AlertThresholds(budget_usd_per_hour=50.0))
    for rule in rules["groups"][0]["rules"]:
        rule["annotations"] = {}  # the unit test pins conditions and labels, not wording
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    big = {"pool": "big"}
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'ebbtide_replicas{pool="big",state="failed"}', "values": "0 1x30"},
                {"series": 'ebbtide_queue_depth{pool="big"}', "values": "0+5x30"},
                {"series": 'ebbtide_requests_total{pool="big",code="200"}', "values": "0+600x40"},
                {"series": 'ebbtide_fallbacks_total{pool="big",fallback="small"}', "values": "0+120x40"},
                # 60 $/h = 1 $/min, over the 50 $/h budget.
                {"series": 'ebbtide_cost_usd_total{pool="big"}', "values": "0+1x100"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "EbbtideReplicasFailing", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "EbbtideReplicasFailing",
                 "exp_alerts": [_alert("EbbtideReplicasFailing", big, rules)]},
                {"eval_time": "12m", "alertname": "EbbtideQueueGrowing",
                 "exp_alerts": [_alert("EbbtideQueueGrowing", big, rules)]},
                {"eval_time": "30m", "alertname": "EbbtideFallbackRateHigh",
                 "exp_alerts": [_alert("EbbtideFallbackRateHigh", big, rules)]},
                {"eval_time": "5m", "alertname": "EbbtideCostBurnHigh", "exp_alerts": []},
                {"eval_time": "95m", "alertname": "EbbtideCostBurnHigh",
                 "exp_alerts": [_alert("EbbtideCostBurnHigh", big, rules)]},
                {"eval_time": "30m", "alertname": "EbbtideErrorRatioHigh", "exp_alerts": []},
            ],
        }],
    }
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
    out = subprocess.run([tool, "test", "rules", "alerts_test.yml"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cli_exports(tmp_path: Path) -> None:
    cfg = tmp_path / "ebbtide.yaml"
    cfg.write_text(yaml.safe_dump({"pools": [{"name": "p", "replica": {"hourly_usd": 2.0}}],
                                   "slo": {"latency_p95_s": 1.5}}))
    run = [sys.executable, "-m", "ebbtide", "export"]
    grafana = subprocess.run([*run, "grafana"], capture_output=True, text=True, timeout=60)
    assert grafana.returncode == 0, grafana.stderr
    assert json.loads(grafana.stdout)["uid"] == "ebbtide-gateway"
    alerts = subprocess.run([*run, "alerts", "-c", str(cfg), "-o", str(tmp_path / "a.yml")],
                            capture_output=True, text=True, timeout=60)
    assert alerts.returncode == 0, alerts.stderr
    rules = yaml.safe_load((tmp_path / "a.yml").read_text())["groups"][0]["rules"]
    p95 = next(r for r in rules if r["alert"] == "EbbtideLatencyP95OverSLO")
    assert p95["expr"].endswith("> 1.5")
    p99 = next(r for r in rules if r["alert"] == "EbbtideLatencyP99OverSLO")
    assert p99["expr"].endswith("> 3"), "P99 threshold defaults to 2 × the SLO's P95"
    missing = str(tmp_path / "missing.yaml")
    bad = subprocess.run([*run, "alerts", "-c", missing], capture_output=True, text=True)
    assert bad.returncode == 2
