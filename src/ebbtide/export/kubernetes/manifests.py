"""``ebbtide export kubernetes``: manifests that run a config's pools on Kubernetes, scaled by HPA or KEDA.

Per pool: a Deployment (the engine server; a startupProbe whose failureThreshold × periodSeconds covers
``replica.startup_timeout_s``; readiness/liveness on ``/health``; a ``preStop`` hook that waits for in-flight
requests up to ``drain_timeout_s``; ``terminationGracePeriodSeconds`` ≥ drain + stop grace), a Service, a
PodDisruptionBudget and an HPA or ScaledObject (see ``autoscale``). Plus the ebbtide gateway:
ConfigMap with its ebbtide.yaml (each pool's engine replaced by an ``openai`` upstream at the pool's Service),
Deployment and Service. Pure: objects are dicts; ``write_manifests`` only writes YAML files.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from ebbtide.config import Config, PoolSpec
from ebbtide.export.kubernetes.autoscale import adapter_rules, hpa, scaled_object
from ebbtide.export.kubernetes.redis import redis_objects, redis_url

__all__ = ["DEFAULT_IMAGE", "ENGINE_PORT", "ExportError", "build_manifests", "write_manifests"]

DEFAULT_IMAGE = "ghcr.io/ebbtide/ebbtide:0.1.0"
VLLM_IMAGE = "vllm/vllm-openai:latest"
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:latest"
ENGINE_PORT = 8000
GATEWAY_PORT = 8080
STARTUP_PERIOD_S = 10
PROMETHEUS_URL = "http://prometheus-server.monitoring.svc:80"
_ENDPOINT_SETTLE_S = 5
_DRAIN_SCRIPT = """\
import re, time, urllib.request
deadline = time.monotonic() + {drain}
time.sleep({settle})
while time.monotonic() < deadline:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except Exception:
        break
    running = sum(float(v) for v in re.findall(r"^(?:{metrics})(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))
    if running == 0:
        break
    time.sleep(1)
"""
_RUNNING_METRICS = {
    "llamacpp": r"llamacpp:requests_processing",
    "vllm": r"vllm:num_requests_running",
    "tgi": r"tgi_batch_current_size",
}


class ExportError(ValueError):
    """A config the Kubernetes export cannot express; the message names the field."""


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "pool"


def build_manifests(
    cfg: Config,
    *,
    autoscaler: str = "hpa",
    namespace: str = "default",
    image: str = DEFAULT_IMAGE,
    prometheus_url: str = PROMETHEUS_URL,
    where: str = "config",
    gateway_replicas: int = 2,
    existing_redis: str | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """``({file stem: [objects]}, warnings)``. With more than one gateway replica the gateways share state through
    Redis: ``existing_redis`` (a URL), else a Redis written here (``redis.yaml``)."""
    warnings: list[str] = []
    files: dict[str, list[dict[str, Any]]] = {}
    for pool in cfg.pools:
        if pool.engine.kind == "openai":
            warnings.append(f"{where}: pools[{pool.name}]: engine openai is external; no Deployment written")
            continue
        name = f"ebbtide-{slug(pool.name)}"
        meta = _meta(name, namespace, pool)
        objects = [_deployment(pool, name, meta, image), _service(name, meta, ENGINE_PORT), _pdb(name, meta)]
        if autoscaler == "keda":
            objects.append(scaled_object(pool, name, meta, prometheus_url, warnings, where))
        else:
            scaler = hpa(pool, name, meta, warnings, where)
            if scaler is not None:
                objects.append(scaler)
        files[f"pool-{slug(pool.name)}"] = objects
    shared = None
    if gateway_replicas > 1 or existing_redis:
        shared = existing_redis or redis_url(namespace)
        if not existing_redis:
            files["redis"] = redis_objects(namespace)
    files["gateway"] = _gateway(cfg, namespace, image, gateway_replicas, shared)
    return files, warnings


def write_manifests(
    cfg: Config,
    out: Path,
    *,
    autoscaler: str = "hpa",
    namespace: str = "default",
    image: str = DEFAULT_IMAGE,
    where: str = "config",
    gateway_replicas: int = 2,
    existing_redis: str | None = None,
) -> tuple[list[Path], list[str]]:
    files, warnings = build_manifests(
        cfg, autoscaler=autoscaler, namespace=namespace, image=image, where=where,
        gateway_replicas=gateway_replicas, existing_redis=existing_redis,
    )
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stem, objects in files.items():
        path = out / f"{stem}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        written.append(path)
    if autoscaler == "hpa":
        path = out / "prometheus-adapter-values.yaml"
        path.write_text(
            "# Helm values for prometheus-adapter: the External metrics the HPAs above read.\n"
            + yaml.safe_dump(adapter_rules(cfg.pools), sort_keys=False)
        )
        written.append(path)
    return written, warnings


def _meta(name: str, namespace: str, pool: PoolSpec | None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "ebbtide"}
    if pool is not None:
        labels["ebbtide.dev/pool"] = slug(pool.name)
    return {"name": name, "namespace": namespace, "labels": labels}


def _selector(meta: dict[str, Any]) -> dict[str, Any]:
    return {"matchLabels": {"app.kubernetes.io/name": meta["labels"]["app.kubernetes.io/name"]}}


def engine_container(pool: PoolSpec, image: str) -> dict[str, Any]:
    engine = pool.engine
    resources: dict[str, Any]
    if engine.kind == "llamacpp":
        threads = engine.threads or 2
        args = [
            "--model", "$(MODEL_PATH)", "--host", "0.0.0.0", "--port", str(ENGINE_PORT),
            "--slots", str(engine.slots), "--threads", str(threads),
            "--ctx-per-slot", str(engine.ctx_per_slot),
            "--alias", pool.name,
        ]  # fmt: skip
        if engine.args:
            args += ["--", *engine.args]
        worker = " ".join(["exec python -m ebbtide.engines.llamacpp_worker", *(_sh(a) for a in args)])
        resolve = (
            'MODEL_PATH="$(python -c "from ebbtide.engines.models import resolve_model_path as r; '
            f'print(r({engine.model!r}))")"'
        )
        command = ["sh", "-c", f"{resolve} && {worker}"]
        resources = {"requests": {"cpu": str(threads), "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
        container_image = image
    elif engine.kind == "vllm":
        command = [
            "vllm", "serve", engine.model, "--host", "0.0.0.0", "--port", str(ENGINE_PORT),
            "--max-num-seqs", str(engine.slots), "--tensor-parallel-size", str(engine.tensor_parallel),
            *engine.args,
        ]  # fmt: skip
        gpus = str(engine.tensor_parallel)
        resources = {"requests": {"nvidia.com/gpu": gpus}, "limits": {"nvidia.com/gpu": gpus}}
        container_image = VLLM_IMAGE
    elif engine.kind == "tgi":
        command = [
            "text-generation-launcher", "--model-id", engine.model, "--hostname", "0.0.0.0",
            "--port", str(ENGINE_PORT), "--max-concurrent-requests", str(engine.slots),
            *engine.args,
        ]  # fmt: skip
        resources = {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
        container_image = TGI_IMAGE
    else:
        raise ExportError(f"pools[{pool.name}]: engine {engine.kind} runs elsewhere; nothing to deploy")
    replica = pool.replica
    probe = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 5}
    period = max(1, math.ceil(replica.health_interval_s))
    drain = _DRAIN_SCRIPT.format(
        drain=math.ceil(replica.drain_timeout_s),
        settle=_ENDPOINT_SETTLE_S,
        port=ENGINE_PORT,
        metrics=_RUNNING_METRICS[engine.kind],
    )
    return {
        "name": "engine",
        "image": container_image,
        "command": command,
        "ports": [{"name": "http", "containerPort": ENGINE_PORT}],
        "resources": resources,
        "startupProbe": {
            **probe,
            "periodSeconds": STARTUP_PERIOD_S,
            "failureThreshold": math.ceil(replica.startup_timeout_s / STARTUP_PERIOD_S),
        },
        "readinessProbe": {**probe, "periodSeconds": period, "failureThreshold": 1},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": replica.health_failures},
        "lifecycle": {"preStop": {"exec": {"command": ["python3", "-c", drain]}}},
    }


def _sh(arg: str) -> str:
    if arg == "$(MODEL_PATH)":
        return '"$MODEL_PATH"'
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _deployment(pool: PoolSpec, name: str, meta: dict[str, Any], image: str) -> dict[str, Any]:
    grace = math.ceil(pool.replica.drain_timeout_s + pool.replica.stop_grace_s) + _ENDPOINT_SETTLE_S
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": max(pool.scaling.min_replicas, 1),
            "selector": _selector(meta),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": meta["labels"],
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(ENGINE_PORT)},
                },
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [engine_container(pool, image)],
                },
            },
        },
    }


def _service(name: str, meta: dict[str, Any], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": _selector(meta)["matchLabels"],
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def _pdb(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta,
        "spec": {"maxUnavailable": 1, "selector": _selector(meta)},
    }


def gateway_config(cfg: Config, namespace: str, shared_state: str | None = None) -> dict[str, Any]:
    """The gateway's ebbtide.yaml: each pool forwards to its Service; Kubernetes sets the replica count. With
    ``shared_state`` (a Redis URL) every gateway replica shares keys, quotas, signals and decisions there."""
    raw = cfg.model_dump(mode="json", exclude_unset=True)
    for pool, spec in zip(raw["pools"], cfg.pools, strict=True):
        if spec.engine.kind == "openai":
            continue
        upstream = "" if spec.engine.kind == "llamacpp" else spec.engine.model
        url = f"http://ebbtide-{slug(spec.name)}.{namespace}.svc:{ENGINE_PORT}"
        pool["engine"] = {
            "kind": "openai", "url": url, "model": upstream,
            "slots": spec.engine.slots * spec.scaling.max_replicas,
        }  # fmt: skip
    raw.setdefault("gateway", {})["host"] = "0.0.0.0"
    raw["gateway"]["port"] = GATEWAY_PORT
    if shared_state is not None:
        raw["state"] = {**raw.get("state", {}), "backend": "redis", "url": shared_state}
    Config.model_validate(raw)
    return raw


def _gateway(cfg: Config, namespace: str, image: str, replicas: int, shared_state: str | None,
             ) -> list[dict[str, Any]]:
    meta = _meta("ebbtide-gateway", namespace, None)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"ebbtide.yaml": yaml.safe_dump(gateway_config(cfg, namespace, shared_state), sort_keys=False)},
    }
    container = {
        "name": "gateway",
        "image": image,
        "command": ["ebbtide", "serve", "-c", "/etc/ebbtide/ebbtide.yaml", "--state-dir", "/var/lib/ebbtide"],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT}],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/ebbtide", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/ebbtide"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": _selector(meta),
            "template": {
                "metadata": {
                    "labels": meta["labels"],
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(GATEWAY_PORT)},
                },
                "spec": {
                    "terminationGracePeriodSeconds": math.ceil(cfg.gateway.request_timeout_s) + 5,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "ebbtide-gateway"}},
                        {"name": "state", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    objects = [config_map, deployment, _service("ebbtide-gateway", meta, GATEWAY_PORT)]
    if replicas > 1:  # a node drain never takes every gateway at once
        objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
                        "spec": {"minAvailable": 1, "selector": _selector(meta)}})
    return objects
