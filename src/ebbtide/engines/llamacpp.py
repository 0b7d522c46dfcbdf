"""llama.cpp replicas: launched as ``python -m ebbtide.engines.llamacpp_worker`` (llama-server in-process).

Health: ``GET /health`` → 200 READY, 503 LOADING (llama.cpp answers while the model loads), anything else or
no answer within the timeout → DOWN. A fresh worker is DOWN for its first ~0.2 s (the interpreter starts
before the listener), then LOADING, then READY; a provider treats DOWN as "not yet" until its startup
timeout. A worker given remote weights stages them first (DOWN meanwhile), so ``replica.startup_timeout_s``
must cover a download on a node whose cache lacks them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp

from ebbtide.config import LlamaCppEngineSpec
from ebbtide.engines._common import HEALTH_TIMEOUT_S, NoStandbyHooks, first, probe_health, sample_values
from ebbtide.engines.base import EngineStats, Health, LaunchPlan, PauseStyle
from ebbtide.engines.models import RemoteWeights

__all__ = ["DEFAULT_LEASE_TIMEOUT_S", "WORKER_MODULE", "LlamaCppEngine", "phases_path"]

WORKER_MODULE = "ebbtide.engines.llamacpp_worker"
DEFAULT_LEASE_TIMEOUT_S = 15.0


def phases_path(lease_path: Path) -> Path:
    """Where a worker writes its start-up phases: next to its lease (the provider reads it from there)."""
    return lease_path.parent / f"{lease_path.name}.phases.json"


class LlamaCppEngine(NoStandbyHooks):
    """Usage: ``LlamaCppEngine(spec, resolve_model(spec.model), lease_timeout_s=orphan_grace_s)``.

    ``model_path`` is a local GGUF file, or the :class:`RemoteWeights` the worker stages before loading. A hot
    standby is the worker stopped with SIGSTOP (one process: llama.cpp runs inside it) and resumed with SIGCONT.
    """

    kind = "llamacpp"
    launches = True
    pause: PauseStyle = "signal"

    def __init__(
        self,
        spec: LlamaCppEngineSpec,
        model_path: Path | RemoteWeights,
        *,
        lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
        alias: str | None = None,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
        host: str = "127.0.0.1",
    ) -> None:
        self.spec = spec
        self.model_path = model_path
        self.slots = spec.slots
        self.lease_timeout_s = lease_timeout_s
        self.alias = alias
        self.health_timeout_s = health_timeout_s
        self.host = host

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan:
        argv = [
            sys.executable, "-m", WORKER_MODULE,
            *self._model_args(),
            "--host", self.host,
            "--port", str(port),
            "--slots", str(self.spec.slots),
            "--threads", str(threads),
            "--ctx-per-slot", str(self.spec.ctx_per_slot),
        ]  # fmt: skip
        if lease_path is not None:
            argv += ["--lease", str(lease_path), "--lease-timeout", f"{self.lease_timeout_s:g}"]
            argv += ["--phases", str(phases_path(lease_path))]
        if self.alias:
            argv += ["--alias", self.alias]
        if self.spec.args:
            argv += ["--", *self.spec.args]
        return LaunchPlan(argv=argv, env={"PYTHONUNBUFFERED": "1"})

    def stage_plan(self) -> LaunchPlan | None:  # type: ignore[override]
        """Remote weights: the worker in ``--stage-only`` mode (stage into the node's cache, then exit 0)."""
        if not isinstance(self.model_path, RemoteWeights):
            return None
        argv = [sys.executable, "-m", WORKER_MODULE, *self._model_args(), "--port", "0", "--stage-only"]
        return LaunchPlan(argv=argv, env={"PYTHONUNBUFFERED": "1"})

    def _model_args(self) -> list[str]:
        weights = self.model_path
        if not isinstance(weights, RemoteWeights):
            return ["--model", str(weights)]
        args = ["--model", weights.url]
        if weights.sha256:
            args += ["--sha256", weights.sha256]
        if weights.cache_dir is not None:
            args += ["--model-cache", str(weights.cache_dir)]
        if weights.cache_limit_bytes is not None:
            args += ["--cache-limit-bytes", str(weights.cache_limit_bytes)]
        return args

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> Health:
        return await probe_health(session, base_url, self.health_timeout_s, loading_status=503)

    def parse_metrics(self, text: str) -> EngineStats:
        v = sample_values(text)
        return EngineStats(
            requests_running=first(v, "llamacpp:requests_processing"),
            requests_waiting=first(v, "llamacpp:requests_deferred"),
            prompt_tokens_total=first(v, "llamacpp:prompt_tokens_total"),
            generation_tokens_total=first(v, "llamacpp:tokens_predicted_total"),
        )

    def upstream_model(self, requested: str) -> str | None:
        return None
