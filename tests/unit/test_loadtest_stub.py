"""The stub engine the load tests and benchmark use: OpenAI shapes, SSE framing, llama.cpp metric names."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from ebbtide.config import LlamaCppEngineSpec, OpenAIEngineSpec
from ebbtide.engines.base import Health
from ebbtide.engines.llamacpp import LlamaCppEngine
from ebbtide.engines.openai import OpenAIEngine
from ebbtide.testing.stub_engine import StubConfig, create_stub_app, stub_server


async def test_chat_stream_has_n_chunks_then_done() -> None:
    async with stub_server(StubConfig(chunks=5)) as url, aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
        async with s.post(url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            text = (await resp.read()).decode()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]" and len(events) == 6
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == " ".join(["stub"] * 5)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[0]["model"] == "m"


async def test_completion_json_respects_max_tokens_and_reports_usage() -> None:
    async with stub_server(StubConfig(chunks=16)) as url, aiohttp.ClientSession() as s:
        body = {"model": "m", "prompt": "x", "max_tokens": 3}
        async with s.post(url + "/v1/completions", json=body) as resp:
            data = await resp.json()
        async with s.post(url + "/v1/completions", data=b"{nope") as bad:
            assert bad.status == 400
    assert data["choices"][0]["text"] == "stub stub stub" and data["usage"]["completion_tokens"] == 3


async def test_engines_see_it_as_ready_and_parse_its_metrics() -> None:
    async with stub_server(StubConfig(chunks=4)) as url, aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/completions", json={"model": "m", "prompt": "x"}) as resp:
            assert resp.status == 200
        openai_engine = OpenAIEngine(OpenAIEngineSpec.model_validate({"url": url + "/v1"}))
        assert await openai_engine.health(s, openai_engine.base_url) is Health.READY
        llama = LlamaCppEngine(LlamaCppEngineSpec.model_validate({}), Path("unused.gguf"))
        assert await llama.health(s, url) is Health.READY
        async with s.get(url + "/metrics") as resp:
            stats = llama.parse_metrics(await resp.text())
    assert stats.generation_tokens_total == 4 and stats.requests_running == 0


def test_zero_chunks_is_refused() -> None:
    with pytest.raises(ValueError, match="chunks = 0"):
        create_stub_app(StubConfig(chunks=0))
