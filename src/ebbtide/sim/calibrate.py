"""``ebbtide calibrate``: measure a live OpenAI-compatible server's TTFT and time per output token vs
concurrency.

For each concurrency c in 1..N, ``requests_per_level`` streaming ``/v1/completions`` requests run with c in
flight at once (closed loop); the table records TTFT and TPOT percentiles per level. ``sim.service: {kind:
table, path: ...}`` loads it. TPOT = (last token time - first token time) / (tokens - 1), tokens from
``usage`` or counted chunks.

Prompts and the engine's prompt cache: llama.cpp keeps each slot's last prompt and evaluates only what a new
prompt does not share with it, so TTFT depends on what the slots saw before. By default every request of the
sweep (warm-up included) starts with its own serial number, so none shares more than a token or two with any
earlier one and every level measures a full prefill. ``CalibrationPlan.prompt`` sends one text every time
instead - the prompt of the load the table is for (``ebbtide demo`` passes its load client's) - so the cache
behaves as under that load. Either way ``N`` warm-up requests run at once first and are discarded: each slot
has served once (first-request allocations, pages touched), as in a replica that has been serving a while."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from ebbtide.core.stats import nearest_rank

__all__ = ["CalibrationError", "CalibrationPlan", "Sample", "run_calibration", "summarize_level"]

WORDS = [
    "the",
    "tide",
    "rises",
    "and",
    "falls",
    "with",
    "the",
    "moon",
    "over",
    "the",
    "sand",
    "while",
    "boats",
    "wait",
    "at",
    "the",
    "shore",
]


class CalibrationError(Exception):
    """The server could not be measured; the message names the URL and what went wrong."""


@dataclass(frozen=True, slots=True)
class CalibrationPlan:
    url: str
    max_concurrency: int = 4
    requests_per_level: int = 8
    prompt_tokens: int = 128
    max_tokens: int = 64
    model: str = ""
    timeout_s: float = 300.0
    wait_ready_s: float = 60.0
    # The text of every request (cache reuse as under that load); None: a distinct prompt per request.
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    ttft_s: float
    latency_s: float
    output_tokens: int
    prompt_tokens: int | None
    engine_ms_per_token: float | None = None  # the engine's own figure (llama.cpp ``timings``), if reported

    @property
    def tpot_s(self) -> float | None:
        if self.output_tokens < 2:
            return None
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1)


def summarize_level(concurrency: int, samples: list[Sample], wall_s: float) -> dict[str, Any]:
    ttft = [s.ttft_s for s in samples]
    tpot = [t for s in samples if (t := s.tpot_s) is not None] or [0.0]
    lat = [s.latency_s for s in samples]
    out = sum(s.output_tokens for s in samples)
    return {
        "concurrency": concurrency,
        "requests": len(samples),
        "ttft_p50_s": round(nearest_rank(ttft, 0.5), 5),
        "ttft_p95_s": round(nearest_rank(ttft, 0.95), 5),
        "tpot_p50_s": round(nearest_rank(tpot, 0.5), 6),
        "tpot_p95_s": round(nearest_rank(tpot, 0.95), 6),
        "latency_p50_s": round(nearest_rank(lat, 0.5), 5),
        "latency_p95_s": round(nearest_rank(lat, 0.95), 5),
        "throughput_rps": round(len(samples) / wall_s, 4) if wall_s > 0 else None,
        "output_tok_per_s": round(out / wall_s, 2) if wall_s > 0 else None,
        "mean_output_tokens": round(out / len(samples), 2),
        "prompt_tokens_reported": _median_int([s.prompt_tokens for s in samples if s.prompt_tokens]),
        "engine_ms_per_token_p50": _median([s.engine_ms_per_token for s in samples if s.engine_ms_per_token]),
    }


def _median(values: list[float]) -> float | None:
    return round(nearest_rank(values, 0.5), 3) if values else None


def _median_int(values: list[int]) -> int | None:
    return sorted(values)[len(values) // 2] if values else None


async def _first_model(session: aiohttp.ClientSession, plan: CalibrationPlan) -> str:
    deadline = time.monotonic() + plan.wait_ready_s
    last = ""
    while True:
        try:
            async with session.get(f"{plan.url}/v1/models") as resp:
                if resp.status == 200:
                    data = await resp.json(content_type=None)
                    models = data.get("data") or []
                    return str(models[0]["id"]) if models else ""
                last = f"HTTP {resp.status}"
        except aiohttp.ClientError as exc:
            last = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            raise CalibrationError(f"{plan.url}: not ready within {plan.wait_ready_s:g}s ({last})")
        await asyncio.sleep(0.2)


async def _one(session: aiohttp.ClientSession, plan: CalibrationPlan, model: str, prompt: str) -> Sample:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": plan.max_tokens,
        "stream": True,
        "temperature": 0.0,
        "stream_options": {"include_usage": True},
    }
    began = time.perf_counter()
    first: float | None = None
    chunks, usage, timings = 0, None, None
    async with session.post(f"{plan.url}/v1/completions", json=body) as resp:
        if resp.status != 200:
            text = (await resp.text())[:200]
            raise CalibrationError(f"{plan.url}/v1/completions: HTTP {resp.status}: {text}")
        async for raw in resp.content:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            event = json.loads(line[5:])
            usage = event.get("usage") or usage
            timings = event.get("timings") or timings
            if any(c.get("text") for c in event.get("choices") or []):
                chunks += 1
                first = first if first is not None else time.perf_counter()
    end = time.perf_counter()
    if first is None:
        raise CalibrationError(f"{plan.url}: a streamed completion produced no text")
    tokens = int(usage["completion_tokens"]) if usage and usage.get("completion_tokens") else chunks
    prompt_n = int(usage["prompt_tokens"]) if usage and usage.get("prompt_tokens") else None
    engine = timings.get("predicted_per_token_ms") if timings else None
    return Sample(first - began, end - began, tokens, prompt_n,
                  float(engine) if isinstance(engine, int | float) and engine > 0 else None)


class _Prompts:
    """The sweep's prompts: ``plan.prompt`` every time, or the word prompt behind a serial number that never
    repeats within the sweep (a number reused across levels would hit the slot that cached it)."""

    def __init__(self, plan: CalibrationPlan) -> None:
        self.fixed = plan.prompt
        self.words = " ".join(WORDS[i % len(WORDS)] for i in range(plan.prompt_tokens))
        self.sent = 0

    def next(self) -> str:
        self.sent += 1
        return self.fixed if self.fixed is not None else f"{self.sent} {self.words}"


async def _closed_loop(
    session: aiohttp.ClientSession, plan: CalibrationPlan, model: str, prompts: _Prompts, c: int, total: int
) -> tuple[list[Sample], float]:
    """``total`` requests, ``c`` in flight at once; (samples, wall seconds)."""
    left = [total]
    samples: list[Sample] = []

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            samples.append(await _one(session, plan, model, prompts.next()))

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return samples, time.perf_counter() - began


async def _level(
    session: aiohttp.ClientSession, plan: CalibrationPlan, model: str, prompts: _Prompts, c: int
) -> dict[str, Any]:
    samples, wall_s = await _closed_loop(session, plan, model, prompts, c, max(plan.requests_per_level, c))
    return summarize_level(c, samples, wall_s)


async def run_calibration(
    plan: CalibrationPlan,
    progress: Callable[[str], None] | None = None,
    on_table: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Sweep 1..N; ``on_table`` receives the table after every level (``complete`` false until the last)."""
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    # llama.cpp may close a streamed connection after the last event; a fresh connection per request avoids
    # reuse errors.
    connector = aiohttp.TCPConnector(limit=plan.max_concurrency + 1, force_close=True)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            model = plan.model or await _first_model(session, plan)
            prompts = _Prompts(plan)
            # Discarded: one request per slot at once, so no level measures a slot's first request.
            await _closed_loop(session, plan, model, prompts, plan.max_concurrency, plan.max_concurrency)
            table = _table(plan, model, [])
            for c in range(1, plan.max_concurrency + 1):
                level = await _level(session, plan, model, prompts, c)
                table = _table(plan, model, [*table["levels"], level])
                if on_table is not None:
                    on_table(table)
                if progress is not None:
                    progress(
                        f"concurrency {c}: TTFT p50 {level['ttft_p50_s']:.3f}s, "
                        f"TPOT p50 {1000 * level['tpot_p50_s']:.1f} ms, {level['output_tok_per_s']} tok/s"
                    )
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise CalibrationError(f"{plan.url}: {exc or type(exc).__name__}") from exc
    return table


def _table(plan: CalibrationPlan, model: str, levels: list[dict[str, Any]]) -> dict[str, Any]:
    reported = [lv["prompt_tokens_reported"] for lv in levels if lv.get("prompt_tokens_reported")]
    return {
        "source": "ebbtide calibrate",
        "url": plan.url,
        "model": model,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": len(levels) == plan.max_concurrency,
        # The reference prompt length for TTFT scaling: what the server counted, else what was asked for.
        "prompt_tokens": reported[0] if reported else plan.prompt_tokens,
        "max_tokens": plan.max_tokens,
        "requests_per_level": plan.requests_per_level,
        # "shared": every request sent the same text (the prompt cache reused it); "distinct": full prefills.
        "prompt_reuse": "shared" if plan.prompt is not None else "distinct",
        "warmup_requests": plan.max_concurrency,
        "slots": len(levels) or plan.max_concurrency,
        # Other work on the host skews the figures; the load average says how much there was.
        "host_load_avg_1m": round(os.getloadavg()[0], 2),
        "host_cpus": os.cpu_count(),
        "levels": levels,
    }
