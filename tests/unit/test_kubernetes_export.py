"""``export kubernetes``: manifests validated offline (kubernetes-validate --strict; KEDA's ScaledObject with
jsonschema against KEDA's own CRD schema, vendored, with kubectl's strict unknown-field rule), plus the semantic facts
the schemas cannot see."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml
from typer.testing import CliRunner

from ebbtide.config import Config, load_config
from ebbtide.export.cli import register
from ebbtide.export.kubernetes import manifests as k8s

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-wednesday-aas.yaml"
KEDA_CRD = ROOT / "src/ebbtide/export/kubernetes/schemas/keda.sh_scaledobjects.yaml"


def strict(schema: Any) -> Any:
    """``kubectl --validate=strict`` for a structural CRD schema: an object that lists its properties and neither
    declares ``additionalProperties`` nor preserves unknown fields admits no other key."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def keda_schema() -> dict[str, Any]:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    assert crd["spec"]["names"]["kind"] == "ScaledObject" and crd["spec"]["group"] == "keda.sh"
    return strict(version["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]


KEDA_SCHEMA = keda_schema()
K8S_VERSION = "1.37.0"

LLAMA = """
pools:
  - name: small
    engine: {kind: llamacpp, model: default, slots: 4, threads: 2}
    replica: {startup_timeout_s: 125, drain_timeout_s: 45, stop_grace_s: 10}
    scaling:
      min_replicas: 1
      max_replicas: 3
      policies:
        - {kind: queue_depth, target: 4, scale_down_stabilization_s: 240}
        - kind: schedule
          tz: Europe/Paris
          actions:
            - {cron: "0 9 * * 1-5", min_replicas: 2}
            - {cron: "0 18 * * 1-5", min_replicas: 1}
"""


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def export(tmp_path: Path, config: Path, autoscaler: str) -> list[dict[str, Any]]:
    out = tmp_path / autoscaler
    result = CliRunner().invoke(
        cli(),
        [
            "export",
            "kubernetes",
            "-c",
            str(config),
            "--out",
            str(out),
            "--autoscaler",
            autoscaler,
            "--namespace",
            "llm",
        ],
    )
    assert result.exit_code == 0, result.output
    docs: list[dict[str, Any]] = []
    for path in sorted(out.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and "kind" in d]
    return docs


def validate(docs: list[dict[str, Any]]) -> list[str]:
    kinds = []
    for doc in docs:
        if doc["kind"] == "ScaledObject":
            jsonschema.validate(doc, KEDA_SCHEMA)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.append(doc["kind"])
    return kinds


@pytest.fixture
def llama_config(tmp_path: Path) -> Path:
    path = tmp_path / "llama.yaml"
    path.write_text(LLAMA)
    return path


@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
@pytest.mark.parametrize("which", ["seed", "llama"])
def test_manifests_validate_strictly(tmp_path: Path, llama_config: Path, autoscaler: str, which: str) -> None:
    docs = export(tmp_path, SEED if which == "seed" else llama_config, autoscaler)
    scaler = "HorizontalPodAutoscaler" if autoscaler == "hpa" else "ScaledObject"
    assert sorted(validate(docs)) == sorted(
        ["Deployment", "Service", "PodDisruptionBudget", scaler, "ConfigMap", "Deployment", "Service",
         "PodDisruptionBudget", "PersistentVolumeClaim", "Deployment", "Service"]  # 2 gateways, their PDB, Redis
    )


def test_validators_catch_misspelt_fields(tmp_path: Path) -> None:
    docs = export(tmp_path, SEED, "keda")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    jsonschema.validate(scaled, KEDA_SCHEMA)
    misspelt = json.loads(json.dumps(scaled))
    misspelt["spec"]["triggers"][0]["metricTyp"] = misspelt["spec"]["triggers"][0].pop("metricType", "Value")
    with pytest.raises(jsonschema.ValidationError, match="metricTyp"):
        jsonschema.validate(misspelt, KEDA_SCHEMA)
    misspelt = json.loads(json.dumps(scaled))
    misspelt["spec"]["advanced"] = {"horizontalPodAutoscalerConfig": {"behaviour": {}}}
    with pytest.raises(jsonschema.ValidationError, match="behaviour"):
        jsonschema.validate(misspelt, KEDA_SCHEMA)
    scaled["spec"]["triggers"][1]["metadata"]["desiredReplicas"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMA)
    scaled["spec"]["triggers"][1]["metadata"]["desiredReplicas"] = "2"
    scaled["spec"]["maxReplicas"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMA)


def engine_of(docs: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    return deployment["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("which", "name"), [("seed", "ebbtide-writing-assistant"), ("llama", "ebbtide-small")]
)
def test_probes_cover_startup_and_grace_covers_drain(
    tmp_path: Path, llama_config: Path, which: str, name: str
) -> None:
    path = SEED if which == "seed" else llama_config
    replica = load_config(path).pools[0].replica
    pod, container = engine_of(export(tmp_path, path, "hpa"), name)
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= replica.startup_timeout_s
    assert (startup["failureThreshold"] - 1) * startup["periodSeconds"] < replica.startup_timeout_s
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["failureThreshold"] == replica.health_failures
    assert pod["terminationGracePeriodSeconds"] >= replica.drain_timeout_s + replica.stop_grace_s
    drain = container["lifecycle"]["preStop"]["exec"]["command"][2]
    assert f"deadline = time.monotonic() + {math.ceil(replica.drain_timeout_s)}" in drain
    compile(drain, "preStop", "exec")


def test_engine_commands(tmp_path: Path, llama_config: Path) -> None:
    _, vllm = engine_of(export(tmp_path, SEED, "hpa"), "ebbtide-writing-assistant")
    assert vllm["command"][:3] == ["vllm", "serve", "meta-llama/Meta-Llama-3-70B-Instruct"]
    assert vllm["command"][vllm["command"].index("--tensor-parallel-size") + 1] == "8"
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "8"
    _, llama = engine_of(export(tmp_path, llama_config, "hpa"), "ebbtide-small")
    assert llama["image"] == k8s.DEFAULT_IMAGE
    assert llama["command"][:2] == ["sh", "-c"]
    script = llama["command"][2]
    assert "exec python -m ebbtide.engines.llamacpp_worker '--model' \"$MODEL_PATH\"" in script
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0
    assert "'--slots' '4'" in script and "'--alias' 'small'" in script and "resolve_model_path" in script


def test_hpa_scales_on_queue_depth_with_stabilization(tmp_path: Path, llama_config: Path) -> None:
    hpa = next(d for d in export(tmp_path, llama_config, "hpa") if d["kind"] == "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"] == {
        "name": "ebbtide_queue_depth",
        "selector": {"matchLabels": {"pool": "small"}},
    }
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 240
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 180}]
    assert {p["periodSeconds"] for p in behavior["scaleUp"]["policies"]} == {60}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)


def test_keda_cron_triggers_follow_schedule_windows(tmp_path: Path, llama_config: Path) -> None:
    scaled = next(d for d in export(tmp_path, llama_config, "keda") if d["kind"] == "ScaledObject")
    triggers = scaled["spec"]["triggers"]
    assert triggers[0]["metadata"]["query"] == 'sum(ebbtide_queue_depth{pool="small"})'
    assert [t["metadata"] for t in triggers if t["type"] == "cron"] == [
        {"timezone": "Europe/Paris", "start": "0 9 * * 1-5", "end": "0 18 * * 1-5", "desiredReplicas": "2"}
    ]


def test_gateway_configmap_points_pools_at_services(tmp_path: Path) -> None:
    docs = export(tmp_path, SEED, "hpa")
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    gateway_cfg = Config.model_validate(yaml.safe_load(config_map["data"]["ebbtide.yaml"]))
    pool = gateway_cfg.pools[0]
    assert pool.engine.kind == "openai"
    assert pool.engine.url == "http://ebbtide-writing-assistant.llm.svc:8000"
    assert pool.engine.slots == 256 * 5
    assert pool.scaling == load_config(SEED).pools[0].scaling
    assert gateway_cfg.gateway.host == "0.0.0.0"


def test_bad_autoscaler_and_bad_config_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["export", "kubernetes", "-c", str(SEED), "--autoscaler", "knative"])
    assert result.exit_code == 2 and "--autoscaler" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools: [{name: a, engine: {kind: vllm}}]\n")
    result = CliRunner().invoke(cli(), ["export", "kubernetes", "-c", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and str(bad) in result.output and "engine" in result.output
    assert not (tmp_path / "o").exists()


def test_concurrency_policies_scale_on_inflight(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""
pools:
  - name: c
    engine: {kind: vllm, model: m}
    scaling:
      policies:
        - {kind: concurrency, target_per_replica: 8}
        - {kind: ongoing_requests, target_per_replica: 2}
""")
    hpa = next(d for d in export(tmp_path, path, "hpa") if d["kind"] == "HorizontalPodAutoscaler")
    assert [
        (m["external"]["metric"]["name"], m["external"]["target"]["averageValue"])
        for m in hpa["spec"]["metrics"]
    ] == [("ebbtide_inflight", "8"), ("ebbtide_inflight", "2")]


def test_several_gateways_share_state_through_the_redis_written_beside_them_or_an_existing_one(
        tmp_path: Path) -> None:
    docs = export(tmp_path, SEED, "hpa")
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ebbtide-gateway")
    assert gateway["spec"]["replicas"] >= 2
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    state = Config.model_validate(yaml.safe_load(config_map["data"]["ebbtide.yaml"])).state
    assert (state.backend, state.url) == ("redis", "redis://ebbtide-redis.llm.svc:6379/0")
    redis = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ebbtide-redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes", "API keys live there: a restart must keep them"
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "ebbtide-redis")
    assert service["spec"]["ports"][0]["port"] == 6379
    out = tmp_path / "existing"
    result = CliRunner().invoke(cli(), ["export", "kubernetes", "-c", str(SEED), "--out", str(out),
                                        "--gateway-replicas", "3", "--redis-url", "redis://cache.prod:6379/2"])
    assert result.exit_code == 0, result.output
    assert not (out / "redis.yaml").exists()
    docs = [d for d in yaml.safe_load_all((out / "gateway.yaml").read_text()) if d]
    validate(docs)
    assert next(d for d in docs if d["kind"] == "Deployment")["spec"]["replicas"] == 3
    config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["ebbtide.yaml"])
    assert config["state"] == {"backend": "redis", "url": "redis://cache.prod:6379/2"}
    one = tmp_path / "one"
    assert CliRunner().invoke(cli(), ["export", "kubernetes", "-c", str(SEED), "--out", str(one),
                                      "--gateway-replicas", "1"]).exit_code == 0
    assert not (one / "redis.yaml").exists() and "state:" not in (one / "gateway.yaml").read_text()
