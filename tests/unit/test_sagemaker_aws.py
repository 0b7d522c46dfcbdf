"""SageMaker apply/import on moto's in-process AWS: seed 000's Wednesday round trip, idempotency, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from ebbtide.config import Config, load_config
from ebbtide.export.cli import register
from ebbtide.export.sagemaker.apply import AwsClients, SageMakerError, apply_plan, connect
from ebbtide.export.sagemaker.importer import import_config, import_yaml
from ebbtide.export.sagemaker.plan import build_plan

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-wednesday-aas.yaml"
ENDPOINT, VARIANT, REGION = "writing-assistant-prod", "AllTraffic", "us-east-1"
WRITES = ("register_", "put_", "delete_")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsClients]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        yield connect(REGION)


def make_endpoint(clients: AwsClients, variant_extra: dict[str, Any] | None = None) -> None:
    clients.sagemaker.create_model(
        ModelName="llama-70b-ft",
        PrimaryContainer={
            "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:latest",
            "Environment": {"HF_MODEL_ID": "meta-llama/Meta-Llama-3-70B-Instruct", "SM_NUM_GPUS": "8"},
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
    )
    clients.sagemaker.create_endpoint_config(
        EndpointConfigName="writing-assistant-config",
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": "llama-70b-ft",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.12xlarge",
                **(variant_extra or {}),
            }
        ],
    )
    clients.sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="writing-assistant-config")


class Counting:
    """Wraps a boto3 client and counts the calls that change something."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith(WRITES):
            self.writes.append(name)
        return attr


def counting(clients: AwsClients) -> tuple[AwsClients, list[Counting]]:
    wrapped = [Counting(clients.sagemaker), Counting(clients.aas), Counting(clients.cloudwatch)]
    return AwsClients(*wrapped), wrapped


def writes(wrapped: list[Counting]) -> list[str]:
    return [name for w in wrapped for name in w.writes]


def scaling_view(cfg: Config) -> dict[str, Any]:
    """The pool's scaling and startup timeout; schedule actions sorted (AAS lists them by name)."""
    pool = cfg.pools[0]
    scaling = pool.scaling.model_dump()
    for policy in scaling["policies"]:
        if policy["kind"] == "schedule":
            policy["actions"].sort(key=lambda a: a["cron"])
    return {"scaling": scaling, "startup_timeout_s": pool.replica.startup_timeout_s}


def test_seed_wednesday_round_trips(aws: AwsClients, tmp_path: Path) -> None:
    cfg = load_config(SEED)
    plan = build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT)
    make_endpoint(aws, {k: v for k, v in plan.production_variant.items() if k != "VariantName"})
    result = apply_plan(aws, plan)
    assert [c.op for c in result.changes] == [
        "register",
        "put_policy",
        "put_scheduled_action",
        "put_scheduled_action",
    ]
    actions = aws.aas.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"]
    assert {(a["Schedule"], a["Timezone"]) for a in actions} == {
        ("cron(45 8 ? * MON-FRI *)", "America/New_York"),
        ("cron(0 19 * * ? *)", "America/New_York"),
    }
    doc, notes = import_config(aws, ENDPOINT)
    text = import_yaml(doc, notes, ENDPOINT, None)
    (tmp_path / "imported.yaml").write_text(text)
    imported = load_config(tmp_path / "imported.yaml")
    assert scaling_view(imported) == scaling_view(cfg)
    assert imported.pools[0].engine.model_dump() == {
        "kind": "vllm",
        "model": "meta-llama/Meta-Llama-3-70B-Instruct",
        "args": [],
        "slots": 256,
        "tensor_parallel": 8,
        "command": "vllm",
        "sleep_mode": False,
    }
    assert result.notes == []


def test_second_apply_changes_nothing(aws: AwsClients) -> None:
    make_endpoint(aws)
    cfg = load_config(SEED)
    plan = build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT)
    first_clients, first = counting(aws)
    assert apply_plan(first_clients, plan).changes
    assert writes(first) == [
        "register_scalable_target",
        "put_scaling_policy",
        "put_scheduled_action",
        "put_scheduled_action",
    ]
    again, wrapped = counting(aws)
    result = apply_plan(again, plan)
    assert result.changes == []
    assert result.calls == 0
    assert writes(wrapped) == []


def test_apply_changes_only_what_differs_and_deletes_what_is_gone(aws: AwsClients) -> None:
    make_endpoint(aws)
    cfg = load_config(SEED)
    apply_plan(aws, build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT))
    raw = yaml.safe_load(SEED.read_text())
    raw["pools"][0]["scaling"]["max_replicas"] = 6
    raw["pools"][0]["scaling"]["policies"][1]["actions"].pop()
    changed = Config.model_validate(raw)
    clients, wrapped = counting(aws)
    result = apply_plan(clients, build_plan(changed, changed.pools[0], ENDPOINT, VARIANT))
    assert [(c.op, c.name) for c in result.changes] == [
        ("register", f"endpoint/{ENDPOINT}/variant/{VARIANT}"),
        ("delete_scheduled_action", "evening-scale-in"),
    ]
    assert writes(wrapped) == ["register_scalable_target", "delete_scheduled_action"]
    target = aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]
    assert target["MaxCapacity"] == 6


def test_dry_run_shows_the_diff_and_calls_nothing(aws: AwsClients) -> None:
    make_endpoint(aws)
    cfg = load_config(SEED)
    clients, wrapped = counting(aws)
    result = apply_plan(clients, build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT), dry_run=True)
    assert len(result.changes) == 4
    assert writes(wrapped) == []
    assert aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_missing_endpoint_or_variant_is_refused(aws: AwsClients) -> None:
    cfg = load_config(SEED)
    with pytest.raises(SageMakerError, match=f"ResourceId endpoint/{ENDPOINT}/variant/{VARIANT}: endpoint"):
        apply_plan(aws, build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT))
    make_endpoint(aws)
    with pytest.raises(
        SageMakerError, match=f"ResourceId endpoint/{ENDPOINT}/variant/Blue: .*has no production"
    ):
        apply_plan(aws, build_plan(cfg, cfg.pools[0], ENDPOINT, "Blue"))
    assert aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_endpoint_config_timeouts_are_reported_not_changed(aws: AwsClients) -> None:
    make_endpoint(aws)
    cfg = load_config(SEED)
    notes = apply_plan(aws, build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT), dry_run=True).notes
    assert any("ContainerStartupHealthCheckTimeoutInSeconds = None, the config wants 600" in n for n in notes)


STEP_YAML = """
pools:
  - name: p
    engine: {kind: vllm, model: m}
    scaling:
      min_replicas: 1
      max_replicas: 8
      scale_out_cooldown_s: 60
      scale_in_cooldown_s: 300
      policies:
        - kind: step
          metric: queue_depth
          steps:
            - {upper: 2, change: -1}
            - {lower: 10, change: 1}
            - {lower: 40, change: 3}
        - {kind: queue_depth, target: 30}
"""


def test_step_and_custom_metric_policies_apply_and_import(aws: AwsClients, tmp_path: Path) -> None:
    make_endpoint(aws)
    path = tmp_path / "step.yaml"
    path.write_text(STEP_YAML)
    cfg = load_config(path)
    plan = build_plan(cfg, cfg.pools[0], ENDPOINT, VARIANT)
    apply_plan(aws, plan)
    alarms = aws.cloudwatch.describe_alarms()["MetricAlarms"]
    assert {(a["AlarmName"].rsplit("-", 1)[-1], a["ComparisonOperator"], a["Threshold"]) for a in alarms} == {
        ("out", "GreaterThanOrEqualToThreshold", 10.0),
        ("in", "LessThanThreshold", 2.0),
    }
    clients, wrapped = counting(aws)
    assert apply_plan(clients, plan).changes == []
    assert writes(wrapped) == []
    doc, _ = import_config(aws, ENDPOINT, VARIANT, pool="p")
    imported = Config.model_validate(doc).pools[0].scaling
    original = cfg.pools[0].scaling
    assert [p.kind for p in imported.policies] == ["queue_depth", "step"]
    step_in, step_orig = imported.policies[1], original.policies[0]
    assert step_in.intervals() == step_orig.intervals()
    assert [s.change for s in step_in.steps] == [s.change for s in step_orig.steps]
    assert imported.policies[0].target == 30


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_apply_twice_then_import(aws: AwsClients, tmp_path: Path) -> None:
    make_endpoint(aws)
    args = ["apply", "sagemaker", "-c", str(SEED), "--endpoint", ENDPOINT, "--region", REGION]
    runner = CliRunner()
    first = runner.invoke(cli(), [*args, "--dry-run"])
    assert first.exit_code == 0, first.output
    assert "4 change(s)" in first.output and "dry run" in first.output
    assert runner.invoke(cli(), args).exit_code == 0
    second = runner.invoke(cli(), args)
    assert second.exit_code == 0 and "up to date" in second.output
    out = tmp_path / "back.yaml"
    imported = runner.invoke(
        cli(), ["import", "sagemaker", "--endpoint", ENDPOINT, "--region", REGION, "-o", str(out)]
    )
    assert imported.exit_code == 0, imported.output
    assert scaling_view(load_config(out))["scaling"] == scaling_view(load_config(SEED))["scaling"]


def test_cli_apply_refuses_missing_endpoint(aws: AwsClients) -> None:
    result = CliRunner().invoke(
        cli(), ["apply", "sagemaker", "-c", str(SEED), "--endpoint", "nope", "--region", REGION]
    )
    assert result.exit_code == 1
    assert "ResourceId endpoint/nope/variant/AllTraffic" in result.output
    assert aws.aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
