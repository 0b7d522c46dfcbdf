"""``ebbtide plan`` through the real CLI app: the seed's infeasible case, feasible cases, JSON, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ebbtide.plan.feasibility import BUSINESS_HOURS_RPS, instances_by_hour


def plan_argv(model: str, instance: str, *options: str, p95: str = "3") -> list[str]:
    """`ebbtide plan` for the seed's request shape (800 in, 300 out) plus ``options``."""
    return ["plan", "--model", model, "--instance", instance, "--in", "800", "--out", "300", "--p95", p95, *options]


SEED = plan_argv("llama-3-70b", "ml.g5.48xlarge", "--precision", "fp16")


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    from ebbtide import cli

    if "ebbtide.plan.cli" not in cli.COMMAND_MODULES:
        pytest.fail("ebbtide.plan.cli is not registered in COMMAND_MODULES")
    if not any(g.name == "plan" for g in cli.app.registered_groups):
        cli._register_all()
    return cli.app


def _run(app: typer.Typer, args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_seed_case_is_infeasible_with_the_arithmetic(app: typer.Typer) -> None:
    code, out = _run(app, SEED)
    assert code == 1, out
    assert "INFEASIBLE" in out
    assert "141 GB weights / (8 x 600 GB/s) = 29.4 ms/token; x 300 tokens = 8.8 s > 3 s" in out
    assert "$20.36/h list; seed-000: $17/h" in out
    assert "Feasible alternatives on sagemaker" in out


def test_seed_case_json_shape(app: typer.Typer) -> None:
    code, out = _run(app, [*SEED, "--json"])
    assert code == 1
    doc = json.loads(out)
    assert doc["feasible"] is False and doc["chosen"] is None
    assert doc["reasons"] and all(isinstance(r, str) for r in doc["reasons"])
    alts = doc["alternatives"]
    assert alts, "the catalog holds feasible SageMaker options for 70B at 3 s"
    assert all(a["instance"].startswith("ml.") for a in alts)
    assert all(a["latency_s"] <= 3.0 for a in alts)
    assert not any(a["instance"] == "ml.g5.48xlarge" for a in alts)
    costs = [a["usd_per_day"] for a in alts]
    assert costs == sorted(costs)
    for a in alts:
        assert a["usd_per_day"] == pytest.approx(a["hourly_usd"] * sum(a["instances_by_hour"]), abs=0.01)
        assert len(a["instances_by_hour"]) == 24 and min(a["instances_by_hour"]) >= 1


def test_70b_fp8_on_p5_is_feasible_and_costed(app: typer.Typer) -> None:
    args = plan_argv("llama-3-70b", "p5.48xlarge", "--precision", "fp8", "--rps", "25", "--json")
    code, out = _run(app, args)
    assert code == 0, out
    doc = json.loads(out)
    chosen = doc["chosen"]
    assert doc["feasible"] is True and chosen["latency_s"] <= 3.0
    per_hour = math.ceil(25 / chosen["instance_rps"])
    assert chosen["instances_by_hour"] == [per_hour] * 24
    assert chosen["usd_per_day"] == pytest.approx(55.04 * per_hour * 24)
    assert all(not a["instance"].startswith("ml.") for a in doc["alternatives"])


def test_8b_on_g5_12xlarge_feasible_text_and_seed_price(app: typer.Typer) -> None:
    args = plan_argv("llama-3-8b", "ml.g5.48xlarge", "--price", "seed-000", "--json")
    code, out = _run(app, args)
    assert code == 0, out
    chosen = json.loads(out)["chosen"]
    assert chosen["hourly_usd"] == 17.0 and chosen["tp"] == 8
    assert chosen["usd_per_day"] == pytest.approx(17.0 * sum(chosen["instances_by_hour"]))
    code, out = _run(
        app,
        plan_argv("llama-3-8b", "g5.12xlarge", p95="6"),
    )
    assert code == 0, out
    assert "FEASIBLE" in out and "INFEASIBLE" not in out
    code, out = _run(
        app,
        plan_argv("llama-3-8b", "g5.12xlarge", "--tp", "1"),
    )
    assert code == 1
    assert "16.1 GB weights / (1 x 600 GB/s) = 26.8 ms/token; x 300 tokens = 8.0 s > 3 s" in out


def test_ttft_slo_can_make_it_infeasible(app: typer.Typer) -> None:
    args = plan_argv("llama-3-70b", "p5.48xlarge", "--precision", "fp8", "--ttft-p95", "0.001", "--json")
    code, out = _run(app, args)
    assert code == 1
    assert any("TTFT" in r for r in json.loads(out)["reasons"])


def test_custom_config_json_model(app: typer.Typer, tmp_path: Path) -> None:
    cfg = {
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "intermediate_size": 14336,
        "max_position_embeddings": 8192,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code, out = _run(
        app,
        plan_argv(str(path), "g5.12xlarge", "--json", p95="6"),
    )
    assert code == 0, out
    assert json.loads(out)["request"]["params"] == pytest.approx(8.03e9, rel=1e-3)


def test_invalid_tp_is_a_reason(app: typer.Typer) -> None:
    code, out = _run(app, [*SEED[:-2], "--p95", "30", "--tp", "3"])
    assert code == 1
    assert "TP 3 must divide the 8 GPUs and the 8 KV heads: one of [1, 2, 4, 8]" in out


@pytest.mark.parametrize(
    ("flag", "value", "listed"),
    [
        ("--model", "llama-9-000b", "llama-3-70b"),
        ("--instance", "ml.x1.huge", "ml.g5.48xlarge"),
        ("--precision", "fp4", "int4-awq"),
        ("--traffic", "weekends", "business-hours"),
    ],
)
def test_bad_input_exits_2_listing_choices(app: typer.Typer, flag: str, value: str, listed: str) -> None:
    args = list(SEED)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    code, out = _run(app, args)
    assert code == 2, out
    assert value in out and listed in out


def test_missing_options_and_exclusive_traffic_exit_2(app: typer.Typer) -> None:
    code, out = _run(app, ["plan", "--model", "llama-3-70b"])
    assert code == 2 and "--instance" in out and "--p95" in out
    code, out = _run(app, [*SEED, "--rps", "3", "--traffic", "business-hours"])
    assert code == 2 and "exclusive" in out


def test_instances_by_hour_rounds_up_with_a_floor() -> None:
    assert instances_by_hour([0, 1, 10, 10.5, 25], 10.0, 1) == (1, 1, 1, 2, 3)
    assert instances_by_hour([0, 0.1], 10.0, 0) == (0, 1)
    assert len(BUSINESS_HOURS_RPS) == 24 and max(BUSINESS_HOURS_RPS) == 25
