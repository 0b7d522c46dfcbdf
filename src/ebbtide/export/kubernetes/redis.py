"""The Redis that several gateway replicas share (``state: {backend: redis}``): a one-replica Deployment with its
append-only file on a PersistentVolumeClaim (API keys live there: a restart must keep them), and its Service.
``--redis-url`` points the gateways at an existing Redis instead, and none of this is written."""

from __future__ import annotations

from typing import Any

__all__ = ["REDIS_IMAGE", "REDIS_NAME", "REDIS_PORT", "redis_objects", "redis_url"]

REDIS_NAME = "ebbtide-redis"
REDIS_IMAGE = "redis:7.2"
REDIS_PORT = 6379


def redis_url(namespace: str) -> str:
    return f"redis://{REDIS_NAME}.{namespace}.svc:{REDIS_PORT}/0"


def redis_objects(namespace: str, storage: str = "1Gi") -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": REDIS_NAME, "app.kubernetes.io/part-of": "ebbtide"}
    meta = {"name": REDIS_NAME, "namespace": namespace, "labels": labels}
    selector = {"matchLabels": {"app.kubernetes.io/name": REDIS_NAME}}
    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        "args": ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--dir", "/data"],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one writer of the append-only file at a time
            "selector": selector,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container],
                         "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": REDIS_NAME}}]},
            },
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": selector["matchLabels"], "ports": [{"name": "redis", "port": REDIS_PORT,
                                                                 "targetPort": "redis"}]},
    }
    return [claim, deployment, service]
