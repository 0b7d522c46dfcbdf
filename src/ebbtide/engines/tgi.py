"""Hugging Face TGI replicas: ``text-generation-launcher`` launched by the provider; readiness and /metrics.

Like vLLM, TGI's router opens its port only after the shards have loaded, so a loading replica is DOWN until
the provider's startup timeout decides. Each replica gets its own shard socket path (derived from its port) so
several launchers can share a host; pass ``--master-port`` in ``args`` if you shard across GPUs.
Token totals come from the ``_sum`` of TGI's per-request histograms; TGI exposes no KV-cache usage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ebbtide.config import TgiEngineSpec
from ebbtide.engines._common import LoadedOnlyServerEngine, first, sample_values
from ebbtide.engines.base import EngineStats, LaunchPlan

__all__ = ["TgiEngine"]


class TgiEngine(LoadedOnlyServerEngine[TgiEngineSpec]):
    """Usage: ``TgiEngine(spec)``; ``threads`` and ``lease_path`` of ``launch_plan`` are ignored."""

    kind = "tgi"

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan:
        uds = Path(tempfile.gettempdir()) / f"ebbtide-tgi-{port}"
        argv = [
            self.spec.command,
            "--model-id", self.spec.model,
            "--hostname", self.host,
            "--port", str(port),
            "--max-concurrent-requests", str(self.spec.slots),
            "--shard-uds-path", str(uds),
            *self.spec.args,
        ]  # fmt: skip
        return LaunchPlan(argv=argv, env={})

    def parse_metrics(self, text: str) -> EngineStats:
        v = sample_values(text)
        return EngineStats(
            requests_running=first(v, "tgi_batch_current_size"),
            requests_waiting=first(v, "tgi_queue_size"),
            prompt_tokens_total=first(v, "tgi_request_input_length_sum"),
            generation_tokens_total=first(v, "tgi_request_generated_tokens_sum"),
        )

    def upstream_model(self, requested: str) -> str | None:
        """TGI serves one model whatever name a request carries; pass the client's through."""
        return None
