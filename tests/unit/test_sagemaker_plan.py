"""``export sagemaker``: calls from a config, the seed's traps as warnings, refusals naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ebbtide.config import Config, load_config
from ebbtide.export.cli import register
from ebbtide.export.sagemaker.plan import PlanError, build_plan
from ebbtide.export.sagemaker.render import render_boto3, render_cli

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-wednesday-aas.yaml"


def config(policies: list[dict[str, Any]], **scaling: Any) -> Config:
    return Config.model_validate(
        {
            "pools": [
                {
                    "name": "p",
                    "engine": {"kind": "vllm", "model": "m"},
                    "scaling": {"min_replicas": 1, "max_replicas": 4, **scaling, "policies": policies},
                }
            ]
        }
    )


def test_seed_calls_match_the_seed() -> None:
    cfg = load_config(SEED)
    plan = build_plan(cfg, cfg.pools[0], "writing-assistant-prod", "AllTraffic")
    rid = "endpoint/writing-assistant-prod/variant/AllTraffic"
    assert plan.scalable_target == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": rid,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 5,
    }
    (policy,) = plan.policies
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 600.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 180,
    }
    assert [
        (a["ScheduledActionName"], a["Schedule"], a["Timezone"], a["ScalableTargetAction"])
        for a in plan.scheduled_actions
    ] == [
        (
            "morning-pre-warm",
            "cron(45 8 ? * MON-FRI *)",
            "America/New_York",
            {"MinCapacity": 2, "MaxCapacity": 5},
        ),
        ("evening-scale-in", "cron(0 19 * * ? *)", "America/New_York", {"MinCapacity": 1, "MaxCapacity": 3}),
    ]
    assert plan.production_variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert plan.production_variant["ModelDataDownloadTimeoutInSeconds"] == 600
    assert plan.container_env["MODEL_LOAD_TIMEOUT"] == "600"
    assert plan.container_env["SAGEMAKER_TS_RESPONSE_TIMEOUT"] == "60"
    python = render_boto3(plan)
    assert "Schedule='cron(45 8 ? * MON-FRI *)'" in python and f"ResourceId='{rid}'" in python
    shell = render_cli(plan, "us-east-1")
    assert "--schedule 'cron(0 19 * * ? *)'" in shell and "--timezone America/New_York" in shell
    assert shell.count("aws application-autoscaling put-scheduled-action") == 2
    assert [w for w in plan.warnings if not w.startswith("ResourceId")] == []


def test_per_second_looking_target_warns() -> None:
    cfg = config(
        [{"kind": "target_tracking", "target": 20}], scale_out_cooldown_s=60, scale_in_cooldown_s=180
    )
    warnings = build_plan(cfg, cfg.pools[0], "e").warnings
    assert any("target = 20 is invocations per instance per MINUTE" in w and "1200" in w for w in warnings)
    cfg = config(
        [{"kind": "target_tracking", "target": 60}], scale_out_cooldown_s=60, scale_in_cooldown_s=180
    )
    assert not any("per MINUTE" in w for w in build_plan(cfg, cfg.pools[0], "e").warnings)


def test_unset_cooldowns_are_exported_explicitly_with_a_warning() -> None:
    cfg = config([{"kind": "target_tracking", "target": 600}])
    plan = build_plan(cfg, cfg.pools[0], "e", where="f.yaml")
    conf = plan.policies[0]["TargetTrackingScalingPolicyConfiguration"]
    assert (conf["ScaleOutCooldown"], conf["ScaleInCooldown"]) == (60, 180)
    assert any(
        w.startswith("f.yaml: pools[p].scaling.scale_out_cooldown_s/scale_in_cooldown_s not set")
        and "300 s" in w
        for w in plan.warnings
    )


def test_missing_endpoint_name_and_resource_id_warn() -> None:
    cfg = config([{"kind": "target_tracking", "target": 600}])
    plan = build_plan(cfg, cfg.pools[0])
    assert plan.resource_id == "endpoint/p/variant/AllTraffic"
    assert any("no --endpoint given" in w for w in plan.warnings)
    assert any(
        w.startswith("ResourceId endpoint/p/variant/AllTraffic must name an existing") for w in plan.warnings
    )


def test_queue_depth_maps_to_a_custom_metric() -> None:
    cfg = config([{"kind": "queue_depth", "target": 30}])
    plan = build_plan(cfg, cfg.pools[0], "e", "v")
    spec = plan.policies[0]["TargetTrackingScalingPolicyConfiguration"]
    assert spec["TargetValue"] == 30.0
    assert spec["CustomizedMetricSpecification"] == {
        "MetricName": "QueueDepthPerInstance",
        "Namespace": "ebbtide",
        "Dimensions": [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "v"}],
        "Statistic": "Average",
        "Unit": "Count",
    }
    assert any("must publish" in w for w in plan.warnings)


def test_step_policy_becomes_two_alarmed_policies() -> None:
    cfg = config(
        [
            {
                "kind": "step",
                "metric": "queue_depth",
                "steps": [{"upper": 2, "change": -1}, {"lower": 10, "change": 1}, {"lower": 40, "change": 3}],
            }
        ]
    )
    plan = build_plan(cfg, cfg.pools[0], "e", "v")
    out, in_ = plan.policies
    assert out["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 30.0, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 30.0, "ScalingAdjustment": 3},
    ]
    assert in_["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": -1}
    ]
    alarms = {a["PolicyName"]: a["Alarm"] for a in plan.alarms}
    assert alarms[out["PolicyName"]]["Threshold"] == 10
    assert alarms[in_["PolicyName"]]["ComparisonOperator"] == "LessThanThreshold"
    assert "cloudwatch.put_metric_alarm(" in render_boto3(plan)
    assert "POLICY_ARN=$(" in render_cli(plan)


def test_mixed_adjustment_types_in_one_direction_are_refused() -> None:
    cfg = config([{"kind": "step", "steps": [{"lower": 10, "change": 1}, {"lower": 40, "change_pct": 50}]}])
    with pytest.raises(PlanError, match=r"policies\[0\] \(step\): scale-out steps mix"):
        build_plan(cfg, cfg.pools[0], "e")


def test_bad_cron_for_aas_names_the_action() -> None:
    cfg = config([{"kind": "schedule", "actions": [{"cron": "0 8 1 * MON", "min_replicas": 2}]}])
    with pytest.raises(PlanError, match=r"policies\[0\] \(schedule\)\.actions\[0\]: .*split it"):
        build_plan(cfg, cfg.pools[0], "e")


def test_startup_timeout_is_clamped_to_sagemakers_range() -> None:
    cfg = Config.model_validate({"pools": [{"name": "p", "replica": {"startup_timeout_s": 5000}}]})
    plan = build_plan(cfg, cfg.pools[0], "e")
    assert plan.production_variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 3600
    assert plan.container_env["MODEL_LOAD_TIMEOUT"] == "5000"
    assert any("60-3600" in w for w in plan.warnings)


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_json_document() -> None:
    result = CliRunner().invoke(cli(), ["export", "sagemaker", "-c", str(SEED), "--endpoint", "w", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ResourceId"] == "endpoint/w/variant/AllTraffic"
    assert [a["Schedule"] for a in doc["PutScheduledAction"]] == [
        "cron(45 8 ? * MON-FRI *)",
        "cron(0 19 * * ? *)",
    ]


def test_cli_refuses_bad_config_and_ambiguous_pool(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools: [{name: a, scaling: {min_replicas: 3, max_replicas: 2}}]\n")
    result = CliRunner().invoke(cli(), ["export", "sagemaker", "-c", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output and "max_replicas" in result.output
    two = tmp_path / "two.yaml"
    two.write_text("pools: [{name: a}, {name: b}]\n")
    result = CliRunner().invoke(cli(), ["export", "sagemaker", "-c", str(two)])
    assert result.exit_code == 2 and "pass --pool" in result.output
    result = CliRunner().invoke(cli(), ["export", "sagemaker", "-c", str(two), "--pool", "b", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["pool"] == "b"


class _Stub:
    def __init__(self, kind: str, **fields: Any) -> None:
        self.kind = kind
        self.__dict__.update(fields)


def with_stub_policy(stub: _Stub) -> Config:
    """Policies another engineer is still adding: the export keys on ``kind`` and the target field only."""
    cfg = config([{"kind": "target_tracking", "target": 600}])
    pool = cfg.pools[0]
    scaling = pool.scaling.model_copy(update={"policies": [*pool.scaling.policies, stub]})
    return cfg.model_copy(update={"pools": [pool.model_copy(update={"scaling": scaling})]})


def test_predictive_is_refused_unless_skipped() -> None:
    cfg = with_stub_policy(_Stub("predictive"))
    with pytest.raises(PlanError, match=r"policies\[1\] \(predictive\): no AAS equivalent"):
        build_plan(cfg, cfg.pools[0], "e")
    plan = build_plan(cfg, cfg.pools[0], "e", skip_unsupported=True)
    assert len(plan.policies) == 1 and any("skipped (--skip-unsupported)" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("kind", "field", "metric"),
    [
        ("concurrency", "target_concurrency", "InFlightPerInstance"),
        ("ongoing_requests", "target_ongoing_requests", "OngoingRequestsPerInstance"),
    ],
)
def test_concurrency_kinds_map_to_custom_metrics(kind: str, field: str, metric: str) -> None:
    cfg = with_stub_policy(_Stub(kind, **{field: 4}))
    conf = build_plan(cfg, cfg.pools[0], "e").policies[1]["TargetTrackingScalingPolicyConfiguration"]
    assert (conf["TargetValue"], conf["CustomizedMetricSpecification"]["MetricName"]) == (4.0, metric)


@pytest.mark.parametrize(
    ("kind", "metric"),
    [("concurrency", "InFlightPerInstance"), ("ongoing_requests", "OngoingRequestsPerInstance")],
)
def test_registered_concurrency_policies_map_to_custom_metrics(kind: str, metric: str) -> None:
    cfg = config([{"kind": kind, "target_per_replica": 3}])
    conf = build_plan(cfg, cfg.pools[0], "e").policies[0]["TargetTrackingScalingPolicyConfiguration"]
    assert (conf["TargetValue"], conf["CustomizedMetricSpecification"]["MetricName"]) == (3.0, metric)
