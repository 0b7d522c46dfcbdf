"""Feasibility of one deployment against a latency SLO, with the arithmetic, and the feasible alternatives
(instance, precision, TP) ranked by dollars per day for a traffic profile. Pure functions over the catalog.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ebbtide.plan.hardware import Catalog
from ebbtide.plan.roofline import (
    PEAK,
    Efficiency,
    ServiceCurve,
    SloPoint,
    calibration_points,
    service_curve,
    throughput_at_slo,
)
from ebbtide.plan.sizing import (
    DEFAULT_OVERHEAD,
    PRECISIONS,
    Fit,
    ModelShape,
    fits,
    format_gb,
    kv_bytes_per_token,
    tp_degrees,
)

__all__ = [
    "BUSINESS_HOURS_RPS",
    "MAX_BATCH",
    "Option",
    "PlanRequest",
    "Verdict",
    "evaluate",
    "instances_by_hour",
    "verdict_to_json",
]

# fmt: off
BUSINESS_HOURS_RPS: tuple[float, ...] = (
    1, 1, 1, 1, 1, 1, 1, 1,
    1, 5, 10, 15,
    25, 25,
    20, 17.5, 15, 12.5, 10,
    3, 1, 1, 1, 1,
)
# fmt: on
"""Average requests/s for each hour of a weekday, read from seed 000: overnight single digits (~1),
09-11 ramp to ~15, 12-14 averaging 25 (bursts to 40 are the simulator's business), 14-18 tailing 20 -> 10,
after 19 near zero. A stand-in until ``sim/traffic.py`` owns the profile."""

MAX_BATCH = 512
"""Upper bound of the concurrency scan (vLLM's default ``max_num_seqs`` is 256; memory binds first)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """What the user asked: a model at a precision on an instance, a request shape, an SLO and traffic."""

    model: ModelShape
    precision: str
    instance: str
    prompt_tokens: int
    output_tokens: int
    latency_p95_s: float
    ttft_p95_s: float | None = None
    tp: int | None = None
    hourly_rps: Sequence[float] = BUSINESS_HOURS_RPS
    traffic_name: str = "business-hours"
    min_instances: int = 1
    overhead: float = DEFAULT_OVERHEAD
    efficiency: Efficiency
    price_name: str | None = None

    @property
    def context_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def mean_decode_context(self) -> float:
        return self.prompt_tokens + self.output_tokens / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """A feasible (instance, precision, TP) and what it costs for the request's traffic."""

    instance: str
    precision: str
    tp: int
    replicas_per_instance: int
    max_sequences: int
    slo: SloPoint
    hourly_usd: float
    price_note: str
    instances_by_hour: tuple[int, ...]

    @property
    def instance_rps(self) -> float:
        return self.slo.throughput_rps * self.replicas_per_instance

    @property
    def usd_per_day(self) -> float:
        return self.hourly_usd * sum(self.instances_by_hour)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    feasible: bool
    reasons: list[str]
    chosen: Option | None
    alternatives: list[Option] = field(default_factory=list)


def instances_by_hour(
    hourly_rps: Sequence[float], instance_rps: float, min_instances: int
) -> tuple[int, ...]:
    """Instances each hour: ceil(rps / what one instance sustains at the SLO), at least ``min_instances``."""
    return tuple(max(min_instances, math.ceil(rps / instance_rps - 1e-9)) for rps in hourly_rps)


def _price(catalog: Catalog, instance: str, price_name: str | None) -> tuple[float, str]:
    if price_name is not None:
        named = catalog.named_prices[price_name]
        return named.hourly_usd.value, f"{price_name}: {named.hourly_usd.source}"
    cited = catalog.instance(instance).hourly_usd
    return cited.value, ("ESTIMATE " if cited.estimate else "list ") + cited.source


def _fit(req: PlanRequest, catalog: Catalog, instance: str, precision: str, tp: int) -> Fit:
    return fits(
        req.model, precision, catalog, instance, tp, context_tokens=req.context_tokens, overhead=req.overhead
    )


def _curve(
    req: PlanRequest, catalog: Catalog, instance: str, precision: str, tp: int, efficiency: Efficiency
) -> ServiceCurve:
    return service_curve(
        req.model, precision, catalog, instance, tp=tp, context_tokens=req.mean_decode_context, efficiency=efficiency
    )


def _option(
    req: PlanRequest, catalog: Catalog, instance: str, precision: str, tp: int, price_name: str | None = None
) -> Option | None:
    fit = _fit(req, catalog, instance, precision, tp)
    if fit.max_sequences < 1:
        return None
    curve = _curve(req, catalog, instance, precision, tp, req.efficiency)
    slo = throughput_at_slo(
        curve,
        prompt_tokens=req.prompt_tokens,
        output_tokens=req.output_tokens,
        latency_slo_s=req.latency_p95_s,
        ttft_slo_s=req.ttft_p95_s,
        max_batch=min(fit.max_sequences, MAX_BATCH),
    )
    if slo is None:
        return None
    hourly, note = _price(catalog, instance, price_name)
    return Option(
        instance=instance,
        precision=precision,
        tp=tp,
        replicas_per_instance=fit.replicas_per_instance,
        max_sequences=fit.max_sequences,
        slo=slo,
        hourly_usd=hourly,
        price_note=note,
        instances_by_hour=instances_by_hour(
            req.hourly_rps, slo.throughput_rps * fit.replicas_per_instance, req.min_instances
        ),
    )


def _memory_reason(req: PlanRequest, fit: Fit, gpu_count: int, gpu_gb: float) -> str:
    one_sequence = req.context_tokens * kv_bytes_per_token(req.model)
    return (
        f"does not fit: {format_gb(fit.weight_bytes)} GB weights x (1 + {req.overhead:g} overhead) = "
        f"{format_gb(fit.weight_bytes + fit.overhead_bytes)} GB, leaving "
        f"{format_gb(max(fit.kv_budget_bytes, 0))} GB for KV cache on {gpu_count} x {gpu_gb:g} GB; one "
        f"{req.context_tokens:,}-token sequence needs "
        f"{format_gb(one_sequence)} GB"
    )


def _latency_reasons(
    req: PlanRequest, curve_peak: ServiceCurve, curve_eff: ServiceCurve, gpu_bw: float
) -> list[str]:
    dep = curve_peak.deployment
    reasons: list[str] = []
    floor_token_s = dep.weight_bytes / dep.bandwidth_bytes_per_s
    floor_total_s = req.output_tokens * floor_token_s
    head = f"{format_gb(dep.weight_bytes)} GB weights / ({dep.tp} x {gpu_bw:g} GB/s"
    if floor_total_s > req.latency_p95_s:
        reasons.append(
            f"decode floor: {head}) = {floor_token_s * 1e3:.1f} ms/token; x {req.output_tokens} tokens = "
            f"{floor_total_s:.1f} s > {req.latency_p95_s:g} s P95 at any batch size (memory bandwidth)"
        )
    eff = curve_eff.efficiency.bandwidth
    eff_token_s = curve_eff.tpot_s(1)
    eff_total_s = curve_eff.latency_s(req.prompt_tokens, req.output_tokens, 1)
    if eff_total_s > req.latency_p95_s:
        reasons.append(
            f"at the calibrated {eff:.1%} bandwidth efficiency: {head} x {eff:.3f}) = "
            f"{eff_token_s * 1e3:.1f} ms/token (with KV reads) x {req.output_tokens} tokens + "
            f"{curve_eff.prefill_s(req.prompt_tokens):.2f} s prefill = {eff_total_s:.1f} s > "
            f"{req.latency_p95_s:g} s even for a single request"
        )
    if req.ttft_p95_s is not None:
        ttft_floor = curve_peak.ttft_s(req.prompt_tokens, 1)
        ttft_eff = curve_eff.ttft_s(req.prompt_tokens, 1)
        if ttft_eff > req.ttft_p95_s:
            reasons.append(
                f"TTFT for {req.prompt_tokens} prompt tokens: {ttft_eff:.2f} s at calibrated efficiency "
                f"(floor {ttft_floor:.2f} s) > {req.ttft_p95_s:g} s"
            )
    return reasons


def _chosen(req: PlanRequest, catalog: Catalog) -> tuple[Option | None, list[str]]:
    spec = catalog.instance(req.instance)
    gpu = catalog.gpus[spec.gpu]
    tp = req.tp or spec.gpus
    valid = tp_degrees(req.model, spec.gpus)
    if tp not in valid:
        return None, [
            f"TP {tp} must divide the {spec.gpus} GPUs and the {req.model.kv_heads} KV heads: one of {valid}"
        ]
    reasons: list[str] = []
    fit = _fit(req, catalog, req.instance, req.precision, tp)
    if fit.max_sequences < 1:
        reasons.append(_memory_reason(req, fit, tp, gpu.memory_gb.value))
    peak = _curve(req, catalog, req.instance, req.precision, tp, PEAK)
    eff = _curve(req, catalog, req.instance, req.precision, tp, req.efficiency)
    reasons += _latency_reasons(req, peak, eff, gpu.bandwidth_gb_s.value)
    if reasons:
        return None, reasons
    option = _option(req, catalog, req.instance, req.precision, tp, req.price_name)
    if option is None:
        return None, ["no batch size meets the SLO"]
    return option, [
        f"meets P95 {req.latency_p95_s:g} s up to {option.slo.batch} concurrent requests per replica: "
        f"latency {option.slo.latency_s:.2f} s, TTFT {option.slo.ttft_s:.2f} s, "
        f"{option.slo.tpot_s * 1e3:.1f} ms/token, "
        f"{option.instance_rps:.2f} req/s per instance"
    ]


def evaluate(req: PlanRequest, catalog: Catalog) -> Verdict:
    """The verdict for the requested deployment, and every feasible alternative on the same platform
    (SageMaker ``ml.*`` or EC2), cheapest per day first."""
    chosen, reasons = _chosen(req, catalog)
    platform = catalog.instance(req.instance).platform
    alternatives: list[Option] = []
    for name, spec in catalog.instances.items():
        if spec.platform != platform:
            continue
        for precision in PRECISIONS:
            if precision == "bf16":
                continue
            for tp in tp_degrees(req.model, spec.gpus):
                if chosen is not None and (name, precision, tp) == (
                    chosen.instance,
                    chosen.precision,
                    chosen.tp,
                ):
                    continue
                option = _option(req, catalog, name, precision, tp)
                if option is not None:
                    alternatives.append(option)
    alternatives.sort(key=lambda o: (o.usd_per_day, o.hourly_usd, o.instance, o.precision, o.tp))
    return Verdict(feasible=chosen is not None, reasons=reasons, chosen=chosen, alternatives=alternatives)


def _option_json(option: Option) -> dict[str, Any]:
    return {
        "instance": option.instance,
        "precision": option.precision,
        "tp": option.tp,
        "replicas_per_instance": option.replicas_per_instance,
        "batch": option.slo.batch,
        "latency_s": round(option.slo.latency_s, 4),
        "ttft_s": round(option.slo.ttft_s, 4),
        "tpot_s": round(option.slo.tpot_s, 6),
        "replica_rps": round(option.slo.throughput_rps, 4),
        "instance_rps": round(option.instance_rps, 4),
        "hourly_usd": option.hourly_usd,
        "price_source": option.price_note,
        "instances_by_hour": list(option.instances_by_hour),
        "usd_per_day": round(option.usd_per_day, 2),
    }


def verdict_to_json(req: PlanRequest, verdict: Verdict, catalog: Catalog) -> dict[str, Any]:
    """``{"feasible", "reasons", "alternatives"}`` plus the request, the chosen option and the calibration."""
    return {
        "feasible": verdict.feasible,
        "reasons": verdict.reasons,
        "alternatives": [_option_json(o) for o in verdict.alternatives],
        "chosen": _option_json(verdict.chosen) if verdict.chosen else None,
        "request": {
            "model": req.model.name,
            "params": req.model.params,
            "precision": req.precision,
            "instance": req.instance,
            "tp": req.tp or catalog.instance(req.instance).gpus,
            "prompt_tokens": req.prompt_tokens,
            "output_tokens": req.output_tokens,
            "latency_p95_s": req.latency_p95_s,
            "ttft_p95_s": req.ttft_p95_s,
            "traffic": req.traffic_name,
            "hourly_rps": list(req.hourly_rps),
            "efficiency": {"bandwidth": req.efficiency.bandwidth, "compute": req.efficiency.compute},
        },
        "calibration": [
            {
                "name": p.name,
                "floor_ms": round(p.floor_ms, 3),
                "measured_ms": p.measured_ms,
                "efficiency": round(p.efficiency, 4),
                "source": p.source,
            }
            for p in calibration_points(catalog)
        ],
    }
