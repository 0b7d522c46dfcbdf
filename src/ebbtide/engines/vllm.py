"""vLLM replicas: ``vllm serve`` launched by the provider; readiness and /metrics parsing.

vLLM opens its port only once the model is loaded, so a starting replica refuses connections: ``health``
reports that as DOWN (it cannot be told apart from a dead server) and the provider's startup timeout decides
between "still loading" and "failed". ``/health`` answers 200 when the engine is up and 503 once it has
died. vLLM cannot watch ebbtide's lease file: orphan protection for it rests on the provider's process
group.
"""

from __future__ import annotations

from pathlib import Path

from ebbtide.config import VllmEngineSpec
from ebbtide.engines._common import LoadedOnlyServerEngine, first, sample_values
from ebbtide.engines.base import EngineStats, LaunchPlan

__all__ = ["VllmEngine"]


class VllmEngine(LoadedOnlyServerEngine[VllmEngineSpec]):
    """Usage: ``VllmEngine(spec)``; ``threads`` and ``lease_path`` of ``launch_plan`` are ignored."""

    kind = "vllm"

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan:
        argv = [
            self.spec.command, "serve", self.spec.model,
            "--host", self.host,
            "--port", str(port),
            "--max-num-seqs", str(self.spec.slots),
            "--tensor-parallel-size", str(self.spec.tensor_parallel),
            *self.spec.args,
        ]  # fmt: skip
        return LaunchPlan(argv=argv, env={})

    def parse_metrics(self, text: str) -> EngineStats:
        v = sample_values(text)
        return EngineStats(
            requests_running=first(v, "vllm:num_requests_running"),
            requests_waiting=first(v, "vllm:num_requests_waiting"),
            prompt_tokens_total=first(v, "vllm:prompt_tokens_total"),
            generation_tokens_total=first(v, "vllm:generation_tokens_total"),
            kv_cache_usage=first(v, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", reduce="max"),
        )

    def upstream_model(self, requested: str) -> str | None:
        """vLLM rejects names other than the one it serves (``--served-model-name``, else the model)."""
        args = self.spec.args
        for i, arg in enumerate(args):
            if arg.startswith("--served-model-name="):
                return arg.partition("=")[2]
            if arg == "--served-model-name" and i + 1 < len(args):
                return args[i + 1]
        return self.spec.model
