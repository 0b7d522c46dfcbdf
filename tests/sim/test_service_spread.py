"""Per-request service spread from a calibration table's percentiles, and replicas sharing a host's cores."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from ebbtide.config.sim import SharedHostSpec, TableService
from ebbtide.sim.output import summary
from ebbtide.sim.scenario import ScenarioInput, build_simulation
from ebbtide.sim.service import calibration_model, lognormal_fit
from ebbtide.sim.traffic import ConstantRate
from tests.sim.conftest import write_table

POOL = """
pools:
  - name: p
    engine: {{kind: openai, url: "http://127.0.0.1:1", slots: 4}}
    replica: {{hourly_usd: 1}}
    scaling: {{min_replicas: {n}, max_replicas: {n}, policies: [{{kind: target_tracking, target: 1000}}]}}
    sim:
      service: {{kind: table, path: table.json{service_extra}}}
      cold_start: {{kind: fixed, seconds: 1}}
{host}
"""


def _spread_table(path: Path, requests: int = 20) -> Path:
    """TTFT p95 = 2 × p50 and TPOT p95 = 1.5 × p50 at every concurrency, from ``requests`` samples each."""
    levels = [
        {"concurrency": c, "requests": requests, "ttft_p50_s": 0.1, "ttft_p95_s": 0.2, "tpot_p50_s": 0.05,
         "tpot_p95_s": 0.075}
        for c in range(1, 5)
    ]
    path.write_text(json.dumps({"slots": 4, "prompt_tokens": 100, "levels": levels}))
    return path


def _run(tmp_path: Path, rate: float, seed: int = 0, n: int = 1, service_extra: str = "", host: str = "") -> Any:
    cfg = tmp_path / "ebbtide.yaml"
    cfg.write_text(POOL.format(n=n, service_extra=service_extra, host=host))
    sim, _ = build_simulation(
        ScenarioInput(config_path=cfg, start="2028-02-23", tz="UTC", days=1 / 24, seed=seed)
    )
    sim.traffic = ConstantRate(rate, poisson=False, fixed_tokens=(100, 11))
    sim.run()
    return summary(sim)


def test_lognormal_fit_goes_through_both_recorded_percentiles() -> None:
    median, sigma = lognormal_fit(1.0, math.exp(0.5 * NormalDist().inv_cdf(0.95)))
    assert median == pytest.approx(1.0) and sigma == pytest.approx(0.5)
    # calibrate's "p95" of 4 samples is their maximum (~p85) and its "p50" the 2nd smallest (~p38): wider.
    median4, sigma4 = lognormal_fit(1.0, math.exp(0.5 * NormalDist().inv_cdf(0.95)), requests=4)
    assert sigma4 > 0.55 and median4 > 1.0
    assert lognormal_fit(0.3, 0.3) == (0.3, 0.0) and lognormal_fit(0.3, None) == (0.3, 0.0)


def test_table_model_spread_only_for_p50_with_percentiles(tmp_path: Path) -> None:
    data = json.loads(_spread_table(tmp_path / "t.json").read_text())
    spread = calibration_model(TableService(path="t.json"), data, None, "t.json")
    assert spread.has_spread and all(s > 0 for s in spread.ttft_sigma_by_batch)
    assert not calibration_model(TableService(path="t.json", percentile="p95"), data, None, "t").has_spread
    assert not calibration_model(TableService(path="t.json", spread=False), data, None, "t").has_spread


def test_table_with_spread_gives_p95_above_p50_and_stays_deterministic(tmp_path: Path) -> None:
    """One request at a time (0.2 req/s, ~0.6 s each): no batching or queueing, so any tail is the spread's."""
    _spread_table(tmp_path / "table.json")
    a, b, c = _run(tmp_path, 0.2, seed=1), _run(tmp_path, 0.2, seed=1), _run(tmp_path, 0.2, seed=2)
    assert a["completed"] > 700
    assert a["ttft_p95_s"] > 1.5 * a["ttft_p50_s"]
    assert a["latency_p95_s"] > 1.2 * a["latency_p50_s"]
    def same(x: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in x.items() if k != "wall_s"}

    assert same(a) == same(b)
    assert same(a) != same(c)  # another seed draws other service times
    flat = _run(tmp_path, 0.2, seed=1, service_extra=", spread: false")
    assert flat["ttft_p95_s"] == pytest.approx(flat["ttft_p50_s"], abs=1e-9)


def test_a_table_without_percentiles_stays_deterministic(tmp_path: Path) -> None:
    write_table(tmp_path / "table.json", ttft_s=0.1, tpot_s=0.09)
    r = _run(tmp_path, 0.2, seed=1)
    assert r["latency_p50_s"] == pytest.approx(1.0, abs=1e-9) and r["latency_p99_s"] == pytest.approx(1.0, abs=1e-9)


def test_replicas_sharing_too_few_cores_slow_down(tmp_path: Path) -> None:
    """Two replicas, 1 thread each, always both serving (2 req/s of 1.0 s requests): alone they take 1.0 s; on
    one core they run at half speed, 2.0 s; on two cores nothing changes."""
    write_table(tmp_path / "table.json", ttft_s=0.1, tpot_s=0.09)
    host = "      host: {{cores: {c}, threads_per_replica: 1}}"
    alone = _run(tmp_path, 2.0, n=2)
    shared = _run(tmp_path, 2.0, n=2, host=host.format(c=1))
    roomy = _run(tmp_path, 2.0, n=2, host=host.format(c=2))
    assert alone["latency_p50_s"] == pytest.approx(1.0, abs=1e-9)
    # (percentiles are read from 2% histogram buckets; the first request ran alone for a while)
    assert shared["latency_p50_s"] == pytest.approx(2.0, rel=0.02)
    assert shared["ttft_p50_s"] == pytest.approx(0.2, rel=0.02)
    assert roomy["latency_p95_s"] == pytest.approx(1.0, abs=1e-9)


def test_shared_host_rejects_reserving_every_core() -> None:
    with pytest.raises(ValueError, match="reserved_cores"):
        SharedHostSpec(cores=2, reserved_cores=2)
