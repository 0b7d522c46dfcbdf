"""vLLM replicas: ``vllm serve`` launched by the provider; readiness and /metrics parsing.

vLLM opens its port only once the model is loaded, so a starting replica refuses connections: ``health``
reports that as DOWN (it cannot be told apart from a dead server) and the provider's startup timeout decides
between "still loading" and "failed". ``/health`` answers 200 when the engine is up and 503 once it has
died. vLLM cannot watch ebbtide's lease file: orphan protection for it rests on the provider's process
group.

With ``sleep_mode``, replicas start with ``--enable-sleep-mode`` and ``VLLM_SERVER_DEV_MODE=1`` (vLLM serves its
sleep endpoints only in dev mode), and a hot standby uses vLLM's documented HTTP contract: ``POST
/sleep?level=1`` (weights offloaded to CPU RAM, KV cache dropped), ``POST /wake_up``, ``GET /is_sleeping`` →
``{"is_sleeping": bool}``. That path is tested against a small fake server that follows this contract; it has
not been run against vLLM on a GPU here.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from ebbtide.config import VllmEngineSpec
from ebbtide.engines._common import HEALTH_TIMEOUT_S, LoadedOnlyServerEngine, first, post_json, sample_values
from ebbtide.engines.base import EngineStats, LaunchPlan, PauseStyle

__all__ = ["SLEEP_LEVEL", "SLEEP_TIMEOUT_S", "VllmEngine"]

SLEEP_LEVEL = 1  # weights kept in CPU RAM: the fast wake (level 2 drops them)
SLEEP_TIMEOUT_S = 120.0


class VllmEngine(LoadedOnlyServerEngine[VllmEngineSpec]):
    """Usage: ``VllmEngine(spec)``; ``threads`` and ``lease_path`` of ``launch_plan`` are ignored."""

    kind = "vllm"

    @property
    def pause(self) -> PauseStyle:  # type: ignore[override]  # a class attribute in the mixin
        return "http" if self.spec.sleep_mode else "none"

    def launch_plan(self, port: int, threads: int, lease_path: Path | None) -> LaunchPlan:
        argv = [
            self.spec.command, "serve", self.spec.model,
            "--host", self.host,
            "--port", str(port),
            "--max-num-seqs", str(self.spec.slots),
            "--tensor-parallel-size", str(self.spec.tensor_parallel),
            *self.spec.args,
        ]  # fmt: skip
        if not self.spec.sleep_mode:
            return LaunchPlan(argv=argv, env={})
        return LaunchPlan(argv=[*argv, "--enable-sleep-mode"], env={"VLLM_SERVER_DEV_MODE": "1"})

    def warm_up_body(self) -> dict[str, object]:
        return {"model": self.upstream_model(""), "prompt": "Hi", "max_tokens": 1, "temperature": 0}

    async def sleep(self, session: aiohttp.ClientSession, base_url: str) -> None:
        url = f"{base_url.rstrip('/')}/sleep?level={SLEEP_LEVEL}"
        status = await post_json(session, url, None, SLEEP_TIMEOUT_S)
        if status != 200:
            raise RuntimeError(f"vLLM POST {url} answered {status} (is it started with sleep_mode?)")
        if not await self.is_sleeping(session, base_url):
            raise RuntimeError(f"vLLM at {base_url} is not sleeping after POST /sleep")

    async def wake(self, session: aiohttp.ClientSession, base_url: str) -> None:
        url = f"{base_url.rstrip('/')}/wake_up"
        status = await post_json(session, url, None, SLEEP_TIMEOUT_S)
        if status != 200:
            raise RuntimeError(f"vLLM POST {url} answered {status}")

    async def is_sleeping(self, session: aiohttp.ClientSession, base_url: str) -> bool:
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
        async with session.get(f"{base_url.rstrip('/')}/is_sleeping", timeout=timeout) as resp:
            if resp.status != 200:
                raise RuntimeError(f"vLLM GET /is_sleeping answered {resp.status}")
            return bool((await resp.json()).get("is_sleeping"))

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
