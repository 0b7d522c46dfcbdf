"""Helpers for the twin's tests: build and run simulations with the simulator clock only (no sleeps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ebbtide.sim.output import summary
from ebbtide.sim.scenario import ScenarioInput, build_simulation

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TRACES = EXAMPLES / "traces"
AZURE = TRACES / "AzureLLMInferenceTrace_conv.csv"
SERVEGEN = TRACES / "servegen_m-large_rate_10min.csv"


def run_scenario(**kwargs: Any) -> dict[str, Any]:
    sim, _ = build_simulation(ScenarioInput(**kwargs))
    sim.run()
    return summary(sim)


def write_table(path: Path, ttft_s: float, tpot_s: float, slots: int = 4, prompt_tokens: int = 100) -> Path:
    """A calibration table with the same TTFT/TPOT at every concurrency: service time independent of the
    batch."""
    levels = [{"concurrency": c, "ttft_p50_s": ttft_s, "tpot_p50_s": tpot_s} for c in range(1, slots + 1)]
    path.write_text(json.dumps({"slots": slots, "prompt_tokens": prompt_tokens, "levels": levels}))
    return path


@pytest.fixture
def tmp_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(text: str) -> Path:
        p = tmp_path / "ebbtide.yaml"
        p.write_text(text)
        return p

    return make
