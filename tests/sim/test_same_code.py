"""The twin runs the very core the live gateway runs: same classes, same functions, no copies."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import ebbtide.sim.fleet as sim_fleet
import ebbtide.sim.pool as sim_pool
import ebbtide.sim.run as sim_run
from ebbtide.core import cost, fairqueue, fleet, queueing, routing
from ebbtide.core.controller import Controller
from ebbtide.core.policies.schedule import SchedulePolicy
from ebbtide.core.policies.target_tracking import TargetTrackingPolicy
from ebbtide.sim.scenario import ScenarioInput, build_simulation
from tests.sim.conftest import EXAMPLES, ROOT

SIM = ROOT / "src" / "ebbtide" / "sim"
SERVE = ROOT / "src" / "ebbtide" / "serve"
CORE_NAMES = {
    "decide",
    "least_outstanding",
    "power_of_two",
    "round_robin",
    "admit",
    "estimate_wait_s",
    "build_controller",
    "replica_cost_usd",
    "fleet_cost",
    "plan_fleet",
    "preempt",
    "removal_order",
    "wake_order",
    "cheapest_tier",
    "should_overflow",
    "ready_eta_s",
    "ewma",
}


def test_policies_registered_in_core_are_the_ones_the_sim_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {"target_tracking": 0, "schedule": 0}
    for cls, key in ((TargetTrackingPolicy, "target_tracking"), (SchedulePolicy, "schedule")):
        original = cls.decide

        def counting(
            self: Any, signals: Any, state: Any, now_s: float, _o: Any = original, _k: str = key
        ) -> Any:
            calls[_k] += 1
            return _o(self, signals, state, now_s)

        monkeypatch.setattr(cls, "decide", counting)
    sim, _ = build_simulation(
        ScenarioInput(
            config_path=EXAMPLES / "seed-sagemaker.yaml", start="2028-02-23T08:30", days=1 / 24, seed=1
        )
    )
    assert type(sim.controller) is Controller
    assert [type(p) for p in sim.controller.policies] == [TargetTrackingPolicy, SchedulePolicy]
    sim.run()
    ticks = int(3600 / sim.pool.scaling.tick_s)
    assert calls == {"target_tracking": ticks, "schedule": ticks}
    assert any(m.kind == "out" for m in sim.results.marks)  # and their opinions moved the fleet


def test_sim_routes_admits_plans_and_bills_with_the_core_functions() -> None:
    assert sim_pool.least_outstanding is routing.least_outstanding
    assert sim_pool.admit is queueing.admit
    assert sim_pool.plan_fleet is fleet.plan_fleet and sim_fleet.plan_fleet is fleet.plan_fleet
    assert sim_fleet.preempt is fleet.preempt
    assert sim_pool.CostLedger is cost.CostLedger and sim_pool.FairQueue is fairqueue.FairQueue
    assert sim_run.should_overflow is queueing.should_overflow


def _defs_and_imports(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    # module-level functions: a driver's method that carries a verdict out may share its name (Fleet.preempt)
    defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return defs, imports


@pytest.mark.parametrize("driver", [SIM, SERVE], ids=["sim", "serve"])
def test_no_driver_defines_its_own_policy_routing_fleet_plan_admission_or_cost(driver: Path) -> None:
    imported: set[str] = set()
    for path in sorted(driver.rglob("*.py")):
        defs, imports = _defs_and_imports(path)
        assert not defs & CORE_NAMES, f"{path.name} defines {sorted(defs & CORE_NAMES)}"
        imported |= imports
    assert {
        "ebbtide.core.routing",
        "ebbtide.core.queueing",
        "ebbtide.core.signals",
        "ebbtide.core.cost",
        "ebbtide.core.fleet",
        "ebbtide.core.fairqueue",
    } <= imported
    assert "ebbtide.config" in imported  # build_controller: one for both


def test_the_live_gateway_builds_its_controller_the_same_way() -> None:
    users = [p.name for p in sorted(SERVE.rglob("*.py")) if "build_controller" in p.read_text()]
    assert users, "serve/ no longer calls config.build_controller: the twin and the gateway may have diverged"
