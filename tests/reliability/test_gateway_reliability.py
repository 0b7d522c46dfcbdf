"""Reliability of the gateway process (slow): many concurrent streams, fuzzed and malformed input, admin auth.

Each test is bounded in requests and time; the stub engine stands in for the model, so what is measured is the
gateway. Measurements (RSS, counts) are written to test-artifacts/reliability.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from ebbtide.loadtest import Arrival, LoadOptions, run_load
from tests.gateway_harness import GatewayProcess, http_json
from tests.reliability.conftest import POOL

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability.json"
RSS_LIMIT_MB = 400


def _record(key: str, value: dict[str, Any]) -> None:
    ARTIFACTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(ARTIFACTS.read_text()) if ARTIFACTS.exists() else {}
    data[key] = value
    ARTIFACTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{key}: {value}")


class RssSampler:
    """Peak RSS of a process, sampled every 50 ms on a thread while the load runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _healthy(gw: GatewayProcess) -> None:
    assert gw.proc.poll() is None, gw.log()
    assert http_json(gw.url + "/healthz")[0] == 200
    body = {"model": POOL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    status, answer = http_json(gw.url + "/v1/chat/completions", body)
    assert status == 200, answer


def test_thousand_concurrent_streams_no_error_bounded_rss(stub_gateway: tuple[GatewayProcess, str]) -> None:
    gw, _ = stub_gateway
    opts = LoadOptions(url=gw.url, model=POOL, stream=True, max_output_tokens=16, request_timeout_s=60,
                       drain_s=60)
    warm = [Arrival(0.0, 8, 16) for _ in range(50)]
    assert {o.code for o in asyncio.run(run_load(warm, opts))[0]} == {"200"}
    before = psutil.Process(gw.proc.pid).memory_info().rss
    arrivals = [Arrival(i * 0.0002, 8, 16) for i in range(1000)]  # all sent within 0.2 s
    started = time.monotonic()
    with RssSampler(gw.proc.pid) as rss:
        outcomes, elapsed = asyncio.run(run_load(arrivals, opts))
    after = psutil.Process(gw.proc.pid).memory_info().rss
    codes = {c: sum(1 for o in outcomes if o.code == c) for c in {o.code for o in outcomes}}
    peak_inflight = _peak_concurrency(outcomes)
    _record("thousand_streams", {
        "requests": len(outcomes), "codes": codes, "elapsed_s": round(elapsed, 2),
        "wall_s": round(time.monotonic() - started, 2), "peak_concurrent_streams": peak_inflight,
        "rss_before_mb": round(before / 2**20, 1), "rss_peak_mb": round(rss.peak / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
    })
    assert codes == {"200": 1000}, codes
    assert all(o.output_chunks == 17 for o in outcomes), "16 chunks + [DONE] each"
    assert peak_inflight >= 500, "the streams really overlapped"
    assert rss.peak < RSS_LIMIT_MB * 2**20, f"gateway RSS peaked at {rss.peak / 2**20:.0f} MB"
    assert after - before < 100 * 2**20, "memory held after the load ended (a per-request leak?)"
    _healthy(gw)


def _peak_concurrency(outcomes: list[Any]) -> int:
    events = []
    for o in outcomes:
        if o.latency_s is not None:
            start = o.scheduled_s + o.lateness_s
            events += [(start, 1), (start + o.latency_s, -1)]
    level = peak = 0
    for _, step in sorted(events):
        level += step
        peak = max(peak, level)
    return peak


MALFORMED: list[tuple[str, bytes, str]] = [
    ("/v1/chat/completions", b"", "application/json"),
    ("/v1/chat/completions", b"{", "application/json"),
    ("/v1/chat/completions", b"[]", "application/json"),
    ("/v1/chat/completions", b"null", "application/json"),
    ("/v1/chat/completions", b'"text"', "application/json"),
    ("/v1/chat/completions", b"\xff\xfe\x00garbage", "application/json"),
    ("/v1/chat/completions", b'{"model": 5, "messages": []}', "application/json"),
    ("/v1/chat/completions", b'{"model": "stub"}', "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": "hi"}', "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": [1, 2]}', "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": [{"role": "user"}], "stream": "yes"}',
     "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": [{"role": "user", "content": "x"}], '
     b'"max_tokens": -1}', "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": [{"role": "user", "content": "x"}], '
     b'"temperature": "hot"}', "application/json"),
    ("/v1/chat/completions", b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
     "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": [{"role": "user", "content": "x"}]}',
     "text/plain"),
    ("/v1/chat/completions", b"[" * 5000 + b"]" * 5000, "application/json"),
    ("/v1/chat/completions", b'{"model": "stub", "messages": [{"role": "user", "content": "'
     + b"x" * 5_000_000 + b'"}]}', "application/json"),
    ("/v1/completions", b'{"model": "stub"}', "application/json"),
    ("/v1/completions", b'{"model": "stub", "prompt": []}', "application/json"),
    ("/v1/completions", b'{"model": "stub", "prompt": {"a": 1}}', "application/json"),
    ("/v1/completions", b'{"model": "", "prompt": "x"}', "application/json"),
    ("/v1/completions", b'{"model": "stub", "prompt": "x", "n": true}', "application/json"),
    ("/v1/nothing", b"{}", "application/json"),
]


def _mutations(rng: random.Random, n: int) -> list[tuple[str, bytes, str]]:
    """Byte-level mutations of a valid body: truncations, flips, insertions (JSON that is almost right)."""
    valid = {"model": POOL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    good = json.dumps(valid).encode()
    out = []
    for _ in range(n):
        body = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(body) + 1)
            op = rng.randrange(3)
            if op == 0:
                body = body[:pos]
            elif op == 1 and body:
                body[pos % len(body)] = rng.randrange(256)
            else:
                body[pos:pos] = bytes([rng.choice(b'{}[]",:\\0\x00\xff')])
        out.append((rng.choice(["/v1/chat/completions", "/v1/completions"]), bytes(body), "application/json"))
    return out


async def _send_all(url: str, cases: list[tuple[str, bytes, str]]) -> dict[int, int]:
    codes: dict[int, int] = {}
    sem = asyncio.Semaphore(64)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def one(path: str, body: bytes, ctype: str) -> None:
            async with sem, session.post(url + path, data=body, headers={"Content-Type": ctype}) as resp:
                await resp.read()
                codes[resp.status] = codes.get(resp.status, 0) + 1

        await asyncio.gather(*(one(*c) for c in cases))
    return codes


def test_malformed_and_fuzzed_requests_get_only_4xx(
    stub_gateway: tuple[GatewayProcess, str], tmp_path: Path
) -> None:
    gw, _ = stub_gateway
    cases = MALFORMED * 20 + _mutations(random.Random(7), 9600)
    codes = asyncio.run(_send_all(gw.url, cases))
    # A mutation can leave a valid request for the pool: 200 is right for those, and nothing may be 5xx.
    assert sum(codes.values()) == len(cases)
    assert not {c for c in codes if c >= 500}, codes
    assert codes.get(200, 0) < len(cases) // 4 and set(codes) <= {200, 400, 404, 413, 415}, codes
    fuzz = _schemathesis(gw.url, tmp_path)
    _record("fuzz", {"hand_made_and_mutated": len(cases), "codes": codes, **fuzz})
    assert fuzz["returncode"] == 0, fuzz["tail"]
    assert len(cases) + fuzz["requests"] >= 10_000
    _healthy(gw)


def _schemathesis(url: str, tmp_path: Path) -> dict[str, Any]:
    argv = [str(Path(sys.executable).with_name("schemathesis")), "run", url + "/openapi.json",
            "--max-examples", "200", "--seed", "42", "--checks", "not_a_server_error",
            "--phases", "examples,coverage,fuzzing",
            "--request-timeout", "30", "--no-color"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    found = re.search(r"(\d+) generated", out.stdout)
    requests = int(found.group(1)) if found else 0
    return {"returncode": out.returncode, "requests": requests, "tail": (out.stdout + out.stderr)[-3000:]}


ADMIN_ROUTES = [
    ("GET", "/admin/api/state"), ("GET", "/admin/api/decisions"), ("GET", "/admin/api/events"),
    ("POST", "/admin/api/pools/stub/scale"), ("POST", "/admin/api/pools/stub/pause"),
    ("POST", "/admin/api/pools/stub/resume"),
]


def test_admin_api_without_the_token_is_401(stub_gateway: tuple[GatewayProcess, str]) -> None:
    gw, _ = stub_gateway
    token = (gw.state_dir / "admin-token").read_text().strip()
    for method, path in ADMIN_ROUTES:
        body = {"desired": 1} if method == "POST" else None
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                        {"Authorization": f"Bearer {token}x"}):
            status, answer = http_json(gw.url + path, body, headers)
            assert status == 401, (method, path, headers, answer)
            assert answer["error"]["code"] == "invalid_admin_token"
    assert gw.admin("/admin/api/state")[0] == 200
