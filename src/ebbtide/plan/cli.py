"""``ebbtide plan``: is a deployment physically able to meet its latency SLO, and what are the cheaper or
feasible alternatives. A typer group so ``plan compare`` and ``plan tune`` can join it as subcommands.

Exit codes: 0 feasible, 1 infeasible, 2 bad input (unknown model, instance, precision, traffic...).
"""

from __future__ import annotations

import json
from typing import NoReturn

import typer

from ebbtide.plan.commands import compare_command, tune_command
from ebbtide.plan.feasibility import (
    BUSINESS_HOURS_RPS,
    Option,
    PlanRequest,
    Verdict,
    evaluate,
    verdict_to_json,
)
from ebbtide.plan.hardware import Catalog, default_catalog
from ebbtide.plan.roofline import DEFAULT_COMPUTE_EFFICIENCY, Efficiency, calibrated_bandwidth_efficiency
from ebbtide.plan.sizing import (
    DEFAULT_OVERHEAD,
    PRECISIONS,
    PRESETS,
    SizingError,
    fits,
    format_gb,
    kv_bytes_per_token,
    resolve_model,
)
from ebbtide.plan.standby import cold_start_lines

__all__ = ["plan_app", "register"]

TRAFFIC_PROFILES: dict[str, tuple[float, ...]] = {"business-hours": BUSINESS_HOURS_RPS}

plan_app = typer.Typer(
    invoke_without_command=True,
    help="Size hardware and check a latency SLO against the memory-bandwidth floor; price the alternatives.",
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _traffic(rps: float | None, traffic: str | None) -> tuple[tuple[float, ...], str]:
    if rps is not None and traffic is not None:
        _fail("--rps and --traffic are exclusive: give one")
    if rps is not None:
        if rps < 0:
            _fail(f"--rps = {rps}: must be >= 0")
        return (rps,) * 24, f"constant {rps:g} req/s"
    name = traffic or "business-hours"
    if name not in TRAFFIC_PROFILES:
        _fail(f"--traffic = {name!r}: must be one of {', '.join(TRAFFIC_PROFILES)}")
    return TRAFFIC_PROFILES[name], name


def _option_row(o: Option) -> str:
    approx = "~" if o.price_note.startswith("ESTIMATE") else " "
    return (
        f"  {o.instance:<17}{o.precision:<10}{o.tp:>3}{o.replicas_per_instance:>6}{o.slo.batch:>7}"
        f"{o.slo.latency_s:>9.2f}{o.slo.ttft_s:>7.2f}{o.instance_rps:>9.2f}{max(o.instances_by_hour):>6}"
        f"{approx}{o.hourly_usd:>9.2f}{o.usd_per_day:>11,.0f}"
    )


def _render(req: PlanRequest, verdict: Verdict, catalog: Catalog, top: int) -> str:
    spec = catalog.instance(req.instance)
    gpu = catalog.gpus[spec.gpu]
    tp = req.tp or spec.gpus
    fit = fits(
        req.model,
        req.precision,
        catalog,
        req.instance,
        tp,
        context_tokens=req.context_tokens,
        overhead=req.overhead,
    )
    named = catalog.prices_for(req.instance)
    quoted = "".join(f"; {k}: ${p.hourly_usd.value:g}/h" for k, p in named.items())
    lines = [
        f"{req.model.name} ({req.model.params / 1e9:.2f}B params) {req.precision} on {req.instance} "
        f"({spec.gpus} x {spec.gpu}, TP {tp})",
        f"request: {req.prompt_tokens} prompt + {req.output_tokens} output tokens, P95 latency <= "
        f"{req.latency_p95_s:g} s" + (f", P95 TTFT <= {req.ttft_p95_s:g} s" if req.ttft_p95_s else ""),
        f"traffic: {req.traffic_name} (peak {max(req.hourly_rps):g} req/s); efficiency: bandwidth "
        f"{req.efficiency.bandwidth:.1%}, compute {req.efficiency.compute:.0%}",
        f"memory: weights {format_gb(fit.weight_bytes)} GB x (1 + {req.overhead:g}) = "
        f"{format_gb(fit.weight_bytes + fit.overhead_bytes)} GB of {tp} x {gpu.memory_gb.value:g} GB; KV "
        f"{kv_bytes_per_token(req.model):,.0f} B/token -> {fit.max_sequences} sequences of "
        f"{req.context_tokens:,} tokens",
        f"price: ${spec.hourly_usd.value:g}/h list{quoted}",
        "",
        "FEASIBLE" if verdict.feasible else "INFEASIBLE",
        *(f"  - {r}" for r in verdict.reasons),
    ]
    if verdict.chosen is not None:
        lines.append(f"  cost: ${verdict.chosen.usd_per_day:,.0f}/day at ${verdict.chosen.hourly_usd:g}/h")
    lines += [
        "",
        f"Feasible alternatives on {spec.platform}, cheapest per day for {req.traffic_name} traffic:",
    ]
    if not verdict.alternatives:
        lines.append("  none in the catalog")
    else:
        lines.append(
            "  instance         precision  TP  reps  batch  latency  TTFT  req/s/inst  peak"
            "      $/h      $/day"
        )
        lines += [_option_row(o) for o in verdict.alternatives[:top]]
        if len(verdict.alternatives) > top:
            lines.append(f"  ... {len(verdict.alternatives) - top} more (--top N, or --json)")
        lines.append("  fp8/int8/int4-awq change the model's outputs: evaluate quality on your own prompts.")
        if any(o.price_note.startswith("ESTIMATE") for o in verdict.alternatives[:top]):
            lines.append("  ~ price is an estimate (see hardware.yaml), not a list price.")
    hourly = named[req.price_name].hourly_usd.value if req.price_name in named else spec.hourly_usd.value
    lines += ["", *cold_start_lines(fit.weight_bytes, hourly)]
    return "\n".join(lines)


@plan_app.callback()
def plan(
    ctx: typer.Context,
    model: str | None = typer.Option(
        None, "--model", help=f"Preset ({', '.join(PRESETS)}) or a Hugging Face config.json path."
    ),
    instance: str | None = typer.Option(None, "--instance", help="Instance type, e.g. ml.g5.48xlarge."),
    precision: str = typer.Option("fp16", "--precision", help=f"One of {', '.join(PRECISIONS)}."),
    prompt_tokens: int | None = typer.Option(None, "--in", min=1, help="Prompt tokens per request."),
    output_tokens: int | None = typer.Option(None, "--out", min=1, help="Output tokens per request."),
    p95_s: float | None = typer.Option(None, "--p95", min=0.001, help="P95 end-to-end latency SLO, seconds."),
    ttft_p95_s: float | None = typer.Option(None, "--ttft-p95", min=0.001, help="P95 TTFT SLO, seconds."),
    rps: float | None = typer.Option(None, "--rps", help="Constant requests/s (instead of --traffic)."),
    traffic: str | None = typer.Option(
        None, "--traffic", help=f"Daily profile: {', '.join(TRAFFIC_PROFILES)} (default)."
    ),
    tp: int | None = typer.Option(None, "--tp", min=1, help="Tensor-parallel degree (default: all GPUs)."),
    params: float | None = typer.Option(None, "--params", help="Parameter count, overriding the estimate."),
    overhead: float = typer.Option(
        DEFAULT_OVERHEAD, "--overhead", min=0.0, max=1.0, help="Non-KV memory overhead, fraction of weights."
    ),
    bw_efficiency: float | None = typer.Option(
        None, "--bw-efficiency", min=0.01, max=1.0, help="Bandwidth efficiency (default: calibrated)."
    ),
    compute_efficiency: float = typer.Option(
        DEFAULT_COMPUTE_EFFICIENCY,
        "--compute-efficiency",
        min=0.01,
        max=1.0,
        help="Prefill compute efficiency.",
    ),
    price: str | None = typer.Option(None, "--price", help="Named price for the instance, e.g. seed-000."),
    min_instances: int = typer.Option(1, "--min-instances", min=0, help="Instances kept at any hour."),
    top: int = typer.Option(10, "--top", min=1, help="Alternatives to print."),
    as_json: bool = typer.Option(False, "--json", help='Print {"feasible", "reasons", "alternatives", ...}.'),
) -> None:
    """Check MODEL at PRECISION on INSTANCE against the SLO; list feasible alternatives by $/day."""
    if ctx.invoked_subcommand is not None:
        return
    catalog = default_catalog()
    missing = [
        flag
        for flag, value in (
            ("--model", model),
            ("--instance", instance),
            ("--in", prompt_tokens),
            ("--out", output_tokens),
            ("--p95", p95_s),
        )
        if value is None
    ]
    if missing:
        _fail(f"missing {', '.join(missing)}")
    assert model is not None and instance is not None
    assert prompt_tokens is not None and output_tokens is not None and p95_s is not None
    if instance not in catalog.instances:
        _fail(f"instance = {instance!r}: must be one of {', '.join(catalog.instances)}")
    if precision not in PRECISIONS:
        _fail(f"precision = {precision!r}: must be one of {', '.join(PRECISIONS)}")
    if price is not None and price not in catalog.prices_for(instance):
        _fail(
            f"price = {price!r}: named prices for {instance}: "
            f"{', '.join(catalog.prices_for(instance)) or 'none'}"
        )
    try:
        shape = resolve_model(model, params=params)
    except SizingError as exc:
        _fail(str(exc))
    hourly_rps, traffic_name = _traffic(rps, traffic)
    req = PlanRequest(
        model=shape,
        precision=precision,
        instance=instance,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        latency_p95_s=p95_s,
        ttft_p95_s=ttft_p95_s,
        tp=tp,
        hourly_rps=hourly_rps,
        traffic_name=traffic_name,
        min_instances=min_instances,
        overhead=overhead,
        price_name=price,
        efficiency=Efficiency(
            bandwidth=bw_efficiency or calibrated_bandwidth_efficiency(catalog), compute=compute_efficiency
        ),
    )
    verdict = evaluate(req, catalog)
    if as_json:
        typer.echo(json.dumps(verdict_to_json(req, verdict, catalog), indent=2))
    else:
        typer.echo(_render(req, verdict, catalog, top))
    raise typer.Exit(0 if verdict.feasible else 1)


plan_app.command("compare")(compare_command)
plan_app.command("tune")(tune_command)


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")
