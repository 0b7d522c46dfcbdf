"""`/dashboard` in a real headless Chromium against `ebbtide serve` (tiny-GGUF pool) under bounded load."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_harness import LoadLoop, gateway, http_json, wait_for, write_config

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"]


@contextlib.contextmanager
def browser_page() -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page and the list its console errors and page errors land in."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} missing: run scripts/fetch-chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            browser.close()


def _dataset(page: Any, key: str) -> float:
    return float(page.evaluate(f"() => Number(document.body.dataset.{key} || 0)"))


def test_dashboard_draws_live_rate_replicas_and_decisions(tmp_path: Path, tiny_gguf_path: Path,
                                                           free_port: int) -> None:
    cfg = write_config(tmp_path / "ebbtide.yaml", tiny_gguf_path, scaling={
        "min_replicas": 1, "max_replicas": 2, "scale_in_cooldown_s": 600, "tick_s": 6,
        "policies": [{"kind": "target_tracking", "target": 2, "scale_out_datapoints": 1}]})
    state = tmp_path / "state"
    with gateway(cfg, state, free_port, "--time-scale", "60") as gw:
        status, _ = http_json(gw.url + "/dashboard/api/series")
        assert status == 401
        token = (state / "admin-token").read_text().strip()
        # Load until the page shows it (however fast this machine answers), bounded in count and time.
        body = {"model": "tiny", "prompt": "hello there", "max_tokens": 24}
        load = LoadLoop(gw.url, clients=3, max_s=150, max_requests=20_000, path="/v1/completions", body=body)
        with load, browser_page() as (page, errors):
            page.goto(gw.url + "/dashboard")
            assert "admin token" in page.content()
            assert all("401" in e for e in errors), errors  # the refused page itself, nothing else
            errors.clear()
            page.goto(f"{gw.url}/dashboard?token={token}")
            assert page.url == gw.url + "/dashboard"
            wait_for(lambda: _dataset(page, "maxRps") > 0 and _dataset(page, "decisions") >= 1,
                     120, "a non-zero request rate and a decision on the page", interval_s=0.5)
            wait_for(lambda: _dataset(page, "chartsDrawn") == 5, 30, "five charts drawn", interval_s=0.5)
            assert page.locator("#decisions li").count() >= 1
            assert "scale out" in page.locator("#decisions").inner_text()
            assert page.locator("#events li").count() >= 1
            assert page.locator("canvas").count() >= 5
            # the replica starts, phase by phase (the pool's first replica at least)
            wait_for(lambda: _dataset(page, "starts") >= 1, 30, "a timed replica start", interval_s=0.5)
            header = page.locator("#starts thead").inner_text()
            assert "weights loaded" in header and "first token" in header
            first = page.locator("#starts tbody tr").last.inner_text().split()
            assert first[:3] == ["tiny", "tiny-1", "cold"], first
            phases = [float(v) for v in first[3:] if v != "-"]
            assert len(phases) >= 7 and all(v >= 0 for v in phases)
            assert abs(sum(phases[:-1]) - phases[-1]) < 0.05  # the phases add up to the total shown
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert errors == []
        assert load.codes and set(load.codes) == {200}, load.describe()
        assert (state / "series.jsonl").stat().st_size > 0


def test_dashboard_public_flag_serves_without_token(tmp_path: Path, tiny_gguf_path: Path,
                                                    free_port: int) -> None:
    cfg = write_config(tmp_path / "ebbtide.yaml", tiny_gguf_path)
    with gateway(cfg, tmp_path / "state", free_port, "--dashboard-public") as gw:
        wait_for(lambda: http_json(gw.url + "/dashboard/api/series")[1]["pools"].get("tiny"), 30,
                 "a sample of pool tiny")
        with urllib.request.urlopen(gw.url + "/dashboard", timeout=10) as resp:
            assert resp.status == 200 and b"dashboard.js" in resp.read()
        with urllib.request.urlopen(gw.url + "/dashboard/static/uplot.min.js", timeout=10) as resp:
            assert resp.read().startswith(b"/*! https://github.com/leeoniya/uPlot")
