"""``ebbtide calibrate`` against a real llama.cpp server (tiny random GGUF); the twin loading its table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner

from ebbtide.cli import _register_all, app
from ebbtide.sim.calibrate import CalibrationError, CalibrationPlan, Sample, run_calibration, summarize_level
from tests.sim.conftest import run_scenario


def test_summarize_level_percentiles_and_tpot() -> None:
    samples = [Sample(0.1 * k, 0.1 * k + 0.9, 10, 50) for k in range(1, 11)]
    lv = summarize_level(2, samples, wall_s=5.0)
    assert lv["ttft_p50_s"] == pytest.approx(0.5) and lv["ttft_p95_s"] == pytest.approx(1.0)
    assert lv["tpot_p50_s"] == pytest.approx(0.1) and lv["throughput_rps"] == 2.0


async def test_unreachable_server_is_an_error_naming_the_url(free_port: int) -> None:
    plan = CalibrationPlan(f"http://127.0.0.1:{free_port}", 1, 1, wait_ready_s=0.3)
    with pytest.raises(CalibrationError, match=f"127.0.0.1:{free_port}"):
        await run_calibration(plan)


@asynccontextmanager
async def recording_engine(prompts: list[str]) -> AsyncIterator[str]:
    """A streaming /v1/completions that answers two tokens at once and records every prompt it was sent."""

    async def complete(request: web.Request) -> web.StreamResponse:
        prompts.append((await request.json())["prompt"])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for text in ("a", "b"):
            await resp.write(b"data: " + json.dumps({"choices": [{"text": text}]}).encode() + b"\n\n")
        usage = {"prompt_tokens": 9, "completion_tokens": 2}
        last = {"choices": [], "usage": usage, "timings": {"predicted_per_token_ms": 12.5}}  # as llama.cpp does
        await resp.write(b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", complete)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_distinct_prompts_never_repeat_so_no_level_hits_a_slots_cached_prompt() -> None:
    prompts: list[str] = []
    async with recording_engine(prompts) as url:
        table = await run_calibration(CalibrationPlan(url, 3, 2, prompt_tokens=5, max_tokens=2, model="m"))
    # 3 warm-up requests (one per slot, discarded), then 2, 2 and 3 measured at concurrency 1, 2, 3.
    assert len(prompts) == 3 + 2 + 2 + 3 and len(set(prompts)) == len(prompts)
    assert [lv["requests"] for lv in table["levels"]] == [2, 2, 3]
    assert table["prompt_reuse"] == "distinct" and table["warmup_requests"] == 3
    assert [lv["engine_ms_per_token_p50"] for lv in table["levels"]] == [12.5] * 3
    assert all(p.split(" ", 1)[1] == "the tide rises and falls" for p in prompts)


async def test_a_given_prompt_is_sent_verbatim_every_time_after_the_warm_up() -> None:
    prompts: list[str] = []
    async with recording_engine(prompts) as url:
        table = await run_calibration(CalibrationPlan(url, 2, 3, max_tokens=2, model="m", prompt="hi hi hi "))
    assert prompts == ["hi hi hi "] * (2 + 3 + 3)
    assert table["prompt_reuse"] == "shared" and table["levels"][0]["prompt_tokens_reported"] == 9


@pytest.mark.timeout(120)
def test_calibrate_a_real_llamacpp_server_and_simulate_with_the_table(
    worker_process: Any, tmp_path: Path, tmp_config: Any
) -> None:
    worker = worker_process(slots=2)
    out = tmp_path / "table.json"
    _register_all()
    res = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--url",
            worker.base_url,
            "--out",
            str(out),
            "--max-concurrency",
            "2",
            "--requests-per-level",
            "3",
            "--prompt-tokens",
            "32",
            "--max-tokens",
            "8",
        ],
    )
    assert res.exit_code == 0, res.output + worker.stderr()
    table = json.loads(out.read_text())
    assert [lv["concurrency"] for lv in table["levels"]] == [1, 2] and table["complete"] is True
    for lv in table["levels"]:
        assert lv["requests"] == 3 and lv["mean_output_tokens"] == 8 and lv["prompt_tokens_reported"] > 0
        assert 0 < lv["ttft_p50_s"] <= lv["ttft_p95_s"] < 30 and 0 < lv["tpot_p50_s"] < 5
    cfg = tmp_config(f"""
pools:
  - name: tiny
    engine: {{kind: llamacpp, slots: 2}}
    sim: {{service: {{kind: table, path: {out}}}, cold_start: {{kind: fixed, seconds: 1}}}}
""")
    r = run_scenario(config_path=cfg, traffic="constant", rps=0.2, days=0.02, seed=1)
    assert r["completed"] > 0 and r["service_model"].startswith("calibration table table.json")
