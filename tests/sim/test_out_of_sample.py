"""The predictive policy out of sample, pinned so a regression fails the suite (issue 15).

Its defaults were chosen on seeds 100-109 (docs/policies.md). Here: the seed config's business-hours profile,
seeds 0 and 1 (never used to choose anything), 7 days learned (drawn from their own seed, before the start), then
one measured Wednesday the policy has not seen. Pinned: the cost ratio measured when this test was written
(2026-12-06: seed 0 1.104 ×, seed 1 1.127 × the oracle) plus 0.02, and ≥ 99 % of 5-minute windows in SLO (measured
99.65 % and 99.31 %). A Wednesday is the dearest kind of day against the oracle (its lunch peak); the issue's
goal, ≤ 1.10 × as a 7-day mean, and its spread over seeds 0-9 are in docs/policies.md.
"""

from __future__ import annotations

import pytest

from ebbtide.plan.compare import measured_oracle, variants_for
from ebbtide.plan.runner import load_scenario, run_variants
from tests.sim.conftest import EXAMPLES

MIN_SLO = 0.99


@pytest.mark.parametrize(("seed", "measured_ratio"), [(0, 1.104), (1, 1.127)])
def test_predictive_holds_its_measured_cost_and_slo_on_a_day_it_never_saw(seed: int, measured_ratio: float) -> None:
    scn = load_scenario(EXAMPLES / "seed-sagemaker.yaml", traffic="business-hours", days=1, warmup_days=7, seed=seed)
    mo = measured_oracle(scn)
    assert mo.window["learned"] == ["2028-02-16T00:00:00-05:00", "2028-02-23T00:00:00-05:00"]
    assert mo.window["measured"] == ["2028-02-23T00:00:00-05:00", "2028-02-24T00:00:00-05:00"]
    predictive = next(v for v in variants_for(scn, mo.policy_throughput) if v.name == "predictive")
    (run,) = run_variants(scn, [predictive], workers=1)
    ratio = run["cost_usd"] / mo.oracle.cost_usd
    assert ratio <= measured_ratio + 0.02, f"seed {seed}: {ratio:.3f} x oracle"
    assert run["slo_attainment"] >= MIN_SLO, f"seed {seed}: {run['slo_attainment']:.4f} of windows in SLO"
    assert ratio >= 1.0  # the oracle is a lower bound: a run below it means the twin or the oracle broke
