"""`ebbtide serve` with no config: the embedded Gemma 3 270M on real llama.cpp replicas, as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import openai
import pytest

from ebbtide.providers.local import free_port
from tests.gateway_harness import gateway, http_json

pytestmark = pytest.mark.slow


def test_default_pool_answers_the_readme_curl_and_the_openai_sdk(tmp_path: Path) -> None:
    port = free_port()
    with gateway(None, tmp_path / "state", port, ready_pool="default", timeout_s=180) as gw:
        raw = subprocess.run(
            ["curl", "-s", f"localhost:{port}/v1/chat/completions", "-H", "content-type: application/json",
             "-d", '{"model":"default","messages":[{"role":"user","content":"hi"}]}'],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        reply = json.loads(raw)
        assert reply["object"] == "chat.completion"
        assert reply["usage"]["completion_tokens"] >= 1
        assert isinstance(reply["choices"][0]["message"]["content"], str)

        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "The capital of France is"}],
                max_tokens=16, stream=True,
            )
            if chunk.choices
        )
        assert text.strip()
        status, models = http_json(gw.url + "/v1/models")
        assert status == 200 and [m["id"] for m in models["data"]] == ["default"]
