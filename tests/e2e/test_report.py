"""`ebbtide report` for a live state dir and a `simulate --out` dir: one self-contained HTML file that draws
every chart in headless Chromium with no network, plus PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_dashboard import ARTIFACTS, browser_page
from tests.gateway_harness import LoadLoop, gateway, wait_for, write_config

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _ebbtide(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ebbtide", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def _open_report(html: Path, shot: str) -> None:
    text = html.read_text()
    assert "/dashboard/static" not in text and "http://" not in text.split("window.EBBTIDE_DATA")[0]
    with browser_page() as (page, errors):
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(html.as_uri())
        drawn = "() => document.body.dataset.chartsDrawn"
        wait_for(lambda: page.evaluate(drawn) == "5", 20, "five charts drawn", interval_s=0.2)
        assert page.locator(".chart canvas").count() >= 5
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        assert errors == []
        assert requested == [html.as_uri()]


def test_report_of_a_simulation_dir(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    seed = str(EXAMPLES / "seed-sagemaker.yaml")
    run = _ebbtide("simulate", "-c", seed, "--days", "0.5", "--out", str(sim))
    assert run.returncode == 0, run.stderr
    done = _ebbtide("report", "--from", str(sim), "--out", str(tmp_path / "out" / "sim.html"))
    assert done.returncode == 0, done.stderr
    pngs = sorted((tmp_path / "out").glob("sim-*.png"))
    assert [p.name for p in pngs] == ["sim-llama-3-70b-writing-assistant.png"]
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _open_report(tmp_path / "out" / "sim.html", "report-sim.png")


def test_report_of_a_live_state_dir(tmp_path: Path, tiny_gguf_path: Path, free_port: int) -> None:
    cfg = write_config(tmp_path / "ebbtide.yaml", tiny_gguf_path, scaling={
        "min_replicas": 1, "max_replicas": 2, "tick_s": 6,
        "policies": [{"kind": "target_tracking", "target": 1, "scale_out_datapoints": 1}]})
    state = tmp_path / "state"
    with gateway(cfg, state, free_port, "--time-scale", "60") as gw:
        body = {"model": "tiny", "prompt": "hi", "max_tokens": 8}
        # Load until a decision and four samples exist (however fast this machine is), bounded in count and time.
        with LoadLoop(gw.url, clients=2, max_s=120, max_requests=5_000, path="/v1/completions", body=body) as load:
            wait_for(lambda: gw.admin("/admin/api/decisions")[1]["decisions"], 60, "a scaling decision")
            wait_for(lambda: len((state / "series.jsonl").read_text().splitlines()) >= 4, 60, "four samples")
        assert load.codes and set(load.codes) == {200}, load.describe()
    bad = _ebbtide("report", "--from", str(tmp_path), "--out", str(tmp_path / "x.html"))
    assert bad.returncode == 2 and "timeline.csv" in bad.stdout
    done = _ebbtide("report", "--from", str(state), "--out", str(tmp_path / "live.html"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scale out" in (tmp_path / "live.html").read_text()
    assert (tmp_path / "live-tiny.png").stat().st_size > 10_000
    _open_report(tmp_path / "live.html", "report-live.png")
