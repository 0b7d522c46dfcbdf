"""The gateway end to end against real llama.cpp replicas (tiny random GGUF), driven by the official openai SDK."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from ebbtide.providers.local import free_port
from tests.gateway_harness import GatewayProcess, gateway, http_json, wait_for, write_config


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, tiny_gguf_path: Path) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gw")
    cfg = write_config(tmp / "ebbtide.yaml", tiny_gguf_path)
    with gateway(cfg, tmp / "state", free_port()) as g:
        yield g


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def test_openai_sdk_non_stream_chat(gw: GatewayProcess) -> None:
    reply = client(gw).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 8


def test_openai_sdk_stream_chat(gw: GatewayProcess) -> None:
    stream = client(gw).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
    )
    chunks = list(stream)
    assert len(chunks) >= 2
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_completions_endpoint_stream_and_not(gw: GatewayProcess) -> None:
    c = client(gw)
    assert c.completions.create(model="tiny", prompt="Once", max_tokens=4).choices[0].text is not None
    assert len(list(c.completions.create(model="tiny", prompt="Once", max_tokens=4, stream=True))) >= 1


def test_models_lists_the_pool(gw: GatewayProcess) -> None:
    assert [m.id for m in client(gw).models.list()] == ["tiny"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_body"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_model"),
        (b'{"model": "tiny"}', 400, "missing_messages"),
        (b'{"model": "tiny", "messages": []}', 400, "missing_messages"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model_not_found"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', 400, "invalid_value"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "invalid_value"),
    ],
)
def test_bad_requests_get_openai_shaped_4xx(gw: GatewayProcess, body: bytes, status: int, code: str) -> None:
    req = urllib.request.Request(gw.url + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("expected an HTTP error")
    except urllib.error.HTTPError as exc:
        assert exc.code == status
        err = json.loads(exc.read())["error"]
        assert err["code"] == code and err["message"] and err["type"]


def test_wrong_content_type_and_huge_body(gw: GatewayProcess) -> None:
    req = urllib.request.Request(gw.url + "/v1/chat/completions", data=b"model=tiny",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 415
    big = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 10_000_000}]}).encode()
    status, body = http_json_raw(gw.url + "/v1/chat/completions", big)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    status, body = http_json(gw.url + "/v1/chat/completions",
                             {"model": "tiny", "messages": [{"role": "user", "content": "still up?"}], "max_tokens": 2})
    assert status == 200, body


def http_json_raw(url: str, data: bytes) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except ConnectionError:
        return 413, {"error": {"code": "connection closed before the 413 could be read"}}


def test_health_ready_metrics(gw: GatewayProcess) -> None:
    assert http_json(gw.url + "/healthz")[0] == 200
    status, ready = http_json(gw.url + "/readyz")
    assert status == 200 and ready["pools"]["tiny"]["ready"] >= 1
    http_json(gw.url + "/v1/chat/completions",
              {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2})
    text = urllib.request.urlopen(gw.url + "/metrics", timeout=10).read().decode()
    for name in ("ebbtide_requests_total", "ebbtide_request_duration_seconds_bucket", "ebbtide_queue_depth",
                 "ebbtide_replicas", "ebbtide_inflight", "ebbtide_cold_start_seconds_bucket",
                 "ebbtide_cost_usd_total", "ebbtide_output_tokens_total", "ebbtide_ttft_seconds_bucket",
                 "ebbtide_scale_decisions_total"):
        assert name in text, name
    assert 'ebbtide_requests_total{code="200",pool="tiny"}' in text


def test_admin_api_needs_the_token(gw: GatewayProcess) -> None:
    status, body = http_json(gw.url + "/admin/api/state")
    assert status == 401 and body["error"]["code"] == "invalid_admin_token"
    status, body = http_json(gw.url + "/admin/api/state", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    assert gw.admin("/admin/api/state")[0] == 200
    mode = (gw.state_dir / "admin-token").stat().st_mode & 0o777
    assert mode == 0o600


def test_status_command_reads_the_admin_api(gw: GatewayProcess) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ebbtide", "status", "--url", gw.url, "--state-dir", str(gw.state_dir), "--json"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    state = json.loads(out)
    assert state["pools"]["tiny"]["replicas"][0]["state"] in ("ready", "starting")


def test_port_in_use_is_a_clear_error(tmp_path: Path, tiny_gguf_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
        done = subprocess.run(
            [sys.executable, "-m", "ebbtide", "serve", "-c", str(cfg), "--port", str(port),
             "--state-dir", str(tmp_path / "s")],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr


def test_business_and_system_metrics(gw: GatewayProcess) -> None:
    http_json(gw.url + "/v1/chat/completions",
              {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3})

    def scraped() -> str | None:
        text = urllib.request.urlopen(gw.url + "/metrics", timeout=10).read().decode()
        needed = ("ebbtide_replica_rss_bytes{", "ebbtide_replica_cpu_seconds{", "ebbtide_engine_requests_running{",
                  "ebbtide_replica_hours_total{", "ebbtide_cost_per_request_usd{",
                  "ebbtide_cost_per_million_output_tokens_usd{")
        return text if all(n in text for n in needed) else None

    text = wait_for(scraped, 10, "system, engine and business metrics")
    rss = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("ebbtide_replica_rss_bytes{")]
    assert rss and all(10e6 < v < 4e9 for v in rss)
