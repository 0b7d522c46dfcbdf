"""``ebbtide export|apply|import``: ship a pool's tested scaling config to SageMaker or Kubernetes.

``export_app`` is the shared ``export`` group: other areas add their own targets to it (``export grafana``)
with ``@export_app.command("NAME")``; :func:`register` adds the groups to the main app once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ebbtide.config import Config, ConfigError, PoolSpec, load_config

if TYPE_CHECKING:
    from ebbtide.export.sagemaker.plan import AasPlan

__all__ = ["apply_app", "export_app", "import_app", "register"]

export_app = typer.Typer(
    help="Write a config out for another platform (SageMaker, Kubernetes, ...).", no_args_is_help=True
)
apply_app = typer.Typer(
    help="Apply a config's scaling to a live platform, idempotently.", no_args_is_help=True
)
import_app = typer.Typer(
    help="Read a live platform's scaling setup back as ebbtide.yaml.", no_args_is_help=True
)

ConfigOpt = Annotated[Path, typer.Option("-c", "--config", help="ebbtide.yaml to read.")]
PoolOpt = Annotated[
    str | None, typer.Option("--pool", help="Pool to export (needed when there are several).")
]
VariantOpt = Annotated[str, typer.Option("--variant", help="Production variant name.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region (default: the AWS config's).")]
SkipOpt = Annotated[
    bool, typer.Option("--skip-unsupported", help="Drop policies with no mapping, with a warning.")
]


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err().print(f"[red]error:[/red] {escape(message)}", markup=True)
    return typer.Exit(code)


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _pick(cfg: Config, path: Path, name: str | None) -> PoolSpec:
    if name is not None:
        try:
            return cfg.pool(name)
        except KeyError:
            raise _fail(
                f"{path}: --pool = {name!r}: no such pool (have {[p.name for p in cfg.pools]})"
            ) from None
    if len(cfg.pools) > 1:
        raise _fail(f"{path}: pools {[p.name for p in cfg.pools]}: pass --pool to choose one")
    return cfg.pools[0]


def _warn(lines: list[str]) -> None:
    for line in lines:
        _err().print(f"[yellow]warning:[/yellow] {escape(line)}", markup=True)


def _sagemaker_plan(
    config: Path, pool: str | None, endpoint: str | None, variant: str, skip_unsupported: bool
) -> AasPlan:
    """One pool's Application Auto Scaling plan; a bad config, pool or mapping ends the command (exit 2)."""
    from ebbtide.export.sagemaker.plan import PlanError, build_plan

    cfg = _load(config)
    spec = _pick(cfg, config, pool)
    try:
        return build_plan(cfg, spec, endpoint, variant, where=str(config), skip_unsupported=skip_unsupported)
    except PlanError as exc:
        raise _fail(str(exc)) from None


@export_app.command("sagemaker")
def export_sagemaker(
    config: ConfigOpt,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="SageMaker endpoint name.")] = None,
    variant: VariantOpt = "AllTraffic",
    pool: PoolOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document of the calls.")] = False,
    region: RegionOpt = None,
    skip_unsupported: SkipOpt = False,
) -> None:
    """Print the Application Auto Scaling calls (boto3 and AWS CLI) for one pool, warning about the traps."""
    from ebbtide.export.sagemaker.render import render_boto3, render_cli

    plan = _sagemaker_plan(config, pool, endpoint, variant, skip_unsupported)
    if as_json:
        typer.echo(json.dumps(plan.document(), indent=2))
        return
    _warn(plan.warnings)
    typer.echo("# --- boto3 ---")
    typer.echo(render_boto3(plan, region))
    typer.echo("# --- AWS CLI ---")
    typer.echo(render_cli(plan, region))


@apply_app.command("sagemaker")
def apply_sagemaker(
    config: ConfigOpt,
    endpoint: Annotated[str, typer.Option("--endpoint", help="SageMaker endpoint name.")],
    variant: VariantOpt = "AllTraffic",
    pool: PoolOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the diff; change nothing.")] = False,
    region: RegionOpt = None,
    skip_unsupported: SkipOpt = False,
) -> None:
    """Verify the endpoint and variant exist, show the diff against the live setup, then apply only that."""
    from ebbtide.export.sagemaker.apply import SageMakerError, apply_plan, connect

    plan = _sagemaker_plan(config, pool, endpoint, variant, skip_unsupported)
    try:
        result = apply_plan(connect(region), plan, dry_run=dry_run)
    except SageMakerError as exc:
        raise _fail(str(exc), 1) from None
    _warn([w for w in plan.warnings if not w.startswith("ResourceId ")])
    _warn(result.notes)
    if not result.changes:
        typer.echo(f"{plan.resource_id}: up to date, nothing to change")
        return
    typer.echo(f"{plan.resource_id}: {len(result.changes)} change(s)")
    for change in result.changes:
        typer.echo(f"  {change.line()}")
    typer.echo("dry run: nothing changed" if dry_run else f"applied ({result.calls} call(s))")


@import_app.command("sagemaker")
def import_sagemaker(
    endpoint: Annotated[str, typer.Option("--endpoint", help="SageMaker endpoint name.")],
    variant: Annotated[str | None, typer.Option("--variant", help="Variant (default: the only one).")] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", help="Pool name (default: the endpoint name).")
    ] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write here instead of stdout.")] = None,
    region: RegionOpt = None,
) -> None:
    """Turn an endpoint variant's AAS setup into ebbtide.yaml, to replay in the twin."""
    from ebbtide.export.sagemaker.apply import SageMakerError, connect
    from ebbtide.export.sagemaker.importer import import_config, import_yaml

    try:
        doc, notes = import_config(connect(region), endpoint, variant, pool)
    except SageMakerError as exc:
        raise _fail(str(exc), 1) from None
    text = import_yaml(doc, notes, endpoint, variant)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        _err().print(f"wrote {out}", markup=False)


@export_app.command("kubernetes")
def export_kubernetes(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory for the manifests.")] = Path("k8s"),
    autoscaler: Annotated[str, typer.Option("--autoscaler", help="hpa or keda.")] = "hpa",
    namespace: Annotated[str, typer.Option("--namespace", help="Kubernetes namespace.")] = "default",
    image: Annotated[str | None, typer.Option("--image", help="ebbtide image (gateway, llama.cpp).")] = None,
    gateway_replicas: Annotated[int, typer.Option("--gateway-replicas", min=1, help="Gateway pods; more than "
                                                  "one share state through Redis.")] = 2,
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="An existing Redis for the gateways' "
                                                  "shared state (else a Redis Deployment is written).")] = None,
) -> None:
    """Write a Deployment, Service, PodDisruptionBudget and HPA/ScaledObject per pool, plus the gateway (2 replicas
    sharing state through Redis by default) and the Redis they need."""
    from ebbtide.export.kubernetes.manifests import DEFAULT_IMAGE, ExportError, write_manifests

    if autoscaler not in ("hpa", "keda"):
        raise _fail(f"--autoscaler = {autoscaler!r}: must be hpa or keda")
    cfg = _load(config)
    try:
        written, warnings = write_manifests(
            cfg,
            out,
            autoscaler=autoscaler,
            namespace=namespace,
            image=image or DEFAULT_IMAGE,
            where=str(config),
            gateway_replicas=gateway_replicas,
            existing_redis=redis_url,
        )
    except ExportError as exc:
        raise _fail(str(exc)) from None
    _warn(warnings)
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.add_typer(apply_app, name="apply")
    app.add_typer(import_app, name="import")
