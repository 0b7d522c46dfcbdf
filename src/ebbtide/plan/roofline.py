"""Roofline latency model of one replica (a model on ``tp`` GPUs with tensor parallelism).

Decode is bandwidth-bound: a step at batch B reads every weight once plus each sequence's KV cache, so
``step >= (weights + B x kv_per_token x context) / (tp x bandwidth x eff_bw)`` (and ``>= 2 x params x B /
(tp x flops x eff_c)``, which only binds at very large B). Prefill is compute-bound: ``>= 2 x params x prompt
tokens / (tp x flops x eff_c)``. Efficiencies are parameters; the default bandwidth efficiency is derived from
published vLLM measurements in the catalog (:func:`calibration_points`).

:class:`ServiceCurve` is the interface for the simulator: pure ``ttft_s(prompt_tokens, batch)`` and
``tpot_s(batch)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ebbtide.plan.hardware import Catalog, GpuSpec, default_catalog
from ebbtide.plan.sizing import PRESETS, ModelShape, kv_bytes_per_token, weight_bytes

__all__ = [
    "DEFAULT_COMPUTE_EFFICIENCY",
    "PEAK",
    "CalibrationPoint",
    "Deployment",
    "Efficiency",
    "ServiceCurve",
    "SloPoint",
    "calibrated_bandwidth_efficiency",
    "calibration_points",
    "compute_flops_per_s",
    "decode_step_s",
    "default_efficiency",
    "prefill_s",
    "service_curve",
    "throughput_at_slo",
]

DEFAULT_COMPUTE_EFFICIENCY = 0.5
"""Fraction of dense tensor peak reached by prefill GEMMs. An assumption, not calibrated: the published vLLM
figures in the catalog report time per output token only. Prefill is a small share of the seed's requests
(800 prompt tokens against 300 decode steps), so this matters far less than the bandwidth efficiency."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Efficiency:
    """Achieved fraction of peak memory bandwidth (decode) and of peak tensor throughput (prefill)."""

    bandwidth: float
    compute: float

    def __post_init__(self) -> None:
        for field, value in (("bandwidth", self.bandwidth), ("compute", self.compute)):
            if not 0 < value <= 1:
                raise ValueError(f"efficiency.{field} = {value}: must be in (0, 1]")


PEAK = Efficiency(bandwidth=1.0, compute=1.0)
"""Datasheet peaks: the physics floor no engine can beat."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationPoint:
    """A published time per output token against the bandwidth floor of the same setup."""

    name: str
    floor_ms: float
    measured_ms: float
    source: str

    @property
    def efficiency(self) -> float:
        return self.floor_ms / self.measured_ms


def calibration_points(catalog: Catalog) -> list[CalibrationPoint]:
    """Floor = weight bytes / (GPUs x bandwidth) for each published measurement in the catalog."""
    points = []
    for cal in catalog.calibration:
        model = PRESETS[cal.model]
        gpu = catalog.gpus[cal.gpu]
        floor_s = weight_bytes(model.params, cal.precision) / (cal.gpus * gpu.bandwidth_bytes_per_s)
        points.append(
            CalibrationPoint(
                name=cal.name,
                floor_ms=floor_s * 1e3,
                measured_ms=cal.tpot_ms.value,
                source=cal.tpot_ms.source,
            )
        )
    return points


def calibrated_bandwidth_efficiency(catalog: Catalog) -> float:
    """The lowest efficiency among the published points: conservative, it absorbs KV reads, prefill
    interference, communication and kernel overheads at light load as the measurements include them."""
    points = calibration_points(catalog)
    if not points:
        raise ValueError("the catalog has no calibration points")
    return min(p.efficiency for p in points)


@cache
def default_efficiency() -> Efficiency:
    """Calibrated bandwidth efficiency from the shipped catalog, and :data:`DEFAULT_COMPUTE_EFFICIENCY`."""
    return Efficiency(
        bandwidth=calibrated_bandwidth_efficiency(default_catalog()), compute=DEFAULT_COMPUTE_EFFICIENCY
    )


def compute_flops_per_s(gpu: GpuSpec, precision: str) -> float:
    """Peak dense rate the precision's matrix multiplies run at on one GPU. FP8 on a GPU without FP8 and
    INT4-AWQ run weight-only (dequantised to 16-bit), so at the BF16 rate; INT8 is taken as W8A8."""
    if precision == "int8":
        return gpu.int8_tops.value * 1e12
    if precision == "fp8" and gpu.fp8_tflops.value is not None:
        return gpu.fp8_tflops.value * 1e12
    return gpu.bf16_tflops.value * 1e12


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """A model at a precision on ``tp`` GPUs of one type."""

    model: ModelShape
    precision: str
    gpu: GpuSpec
    tp: int
    kv_precision: str = "fp16"

    @property
    def weight_bytes(self) -> float:
        return weight_bytes(self.model.params, self.precision)

    @property
    def kv_bytes_per_token(self) -> float:
        return kv_bytes_per_token(self.model, self.kv_precision)

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.tp * self.gpu.bandwidth_bytes_per_s

    @property
    def flops_per_s(self) -> float:
        return self.tp * compute_flops_per_s(self.gpu, self.precision)


def decode_step_s(dep: Deployment, batch: int, context_tokens: float, eff: Efficiency) -> float:
    """One decode step producing a token for each of ``batch`` sequences of ``context_tokens`` context."""
    read = dep.weight_bytes + batch * dep.kv_bytes_per_token * context_tokens
    memory_s = read / (dep.bandwidth_bytes_per_s * eff.bandwidth)
    compute_s = 2 * dep.model.params * batch / (dep.flops_per_s * eff.compute)
    return max(memory_s, compute_s)


def prefill_s(dep: Deployment, prompt_tokens: int, eff: Efficiency) -> float:
    """Prefill of ``prompt_tokens`` (attention's quadratic term is left out: under 5% below ~4k tokens for
    these models); never faster than one pass over the weights."""
    compute_s = 2 * dep.model.params * prompt_tokens / (dep.flops_per_s * eff.compute)
    memory_s = dep.weight_bytes / (dep.bandwidth_bytes_per_s * eff.bandwidth)
    return max(compute_s, memory_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceCurve:
    """Service times of one replica for the simulator and the planner; all methods are pure.

    ``context_tokens`` is the mean context a decoding sequence holds (prompt + half the output is typical).
    Steady-state model at concurrency B (a finished sequence is replaced at once): each request's prefill
    pauses the decoding batch, so a request's latency is ``B x prefill + out x tpot(B)``.
    """

    deployment: Deployment
    efficiency: Efficiency
    context_tokens: float

    def tpot_s(self, batch: int) -> float:
        """Time per output token when ``batch`` sequences decode together."""
        return decode_step_s(self.deployment, max(batch, 1), self.context_tokens, self.efficiency)

    def prefill_s(self, prompt_tokens: int) -> float:
        return prefill_s(self.deployment, prompt_tokens, self.efficiency)

    def ttft_s(self, prompt_tokens: int, batch: int) -> float:
        """Prefill of this prompt plus the decode step (shared by ``batch`` sequences) emitting token 1."""
        return self.prefill_s(prompt_tokens) + self.tpot_s(batch)

    def latency_s(self, prompt_tokens: int, output_tokens: int, batch: int) -> float:
        """End-to-end latency of one request at steady concurrency ``batch``."""
        return max(batch, 1) * self.prefill_s(prompt_tokens) + output_tokens * self.tpot_s(batch)

    def throughput_rps(self, prompt_tokens: int, output_tokens: int, batch: int) -> float:
        """Requests per second one replica completes at concurrency ``batch`` (Little's law)."""
        return batch / self.latency_s(prompt_tokens, output_tokens, batch)


def service_curve(
    model: ModelShape,
    precision: str,
    catalog: Catalog,
    instance: str,
    *,
    tp: int | None = None,
    context_tokens: float,
    efficiency: Efficiency | None = None,
    kv_precision: str = "fp16",
) -> ServiceCurve:
    """The :class:`ServiceCurve` of ``model`` on ``tp`` GPUs (default: all) of ``instance``."""
    spec = catalog.instance(instance)
    dep = Deployment(
        model=model,
        precision=precision,
        gpu=catalog.gpus[spec.gpu],
        tp=tp or spec.gpus,
        kv_precision=kv_precision,
    )
    return ServiceCurve(
        deployment=dep, efficiency=efficiency or default_efficiency(), context_tokens=context_tokens
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SloPoint:
    """The largest concurrency meeting the SLO and what the replica does there."""

    batch: int
    latency_s: float
    ttft_s: float
    tpot_s: float
    throughput_rps: float


def throughput_at_slo(
    curve: ServiceCurve,
    *,
    prompt_tokens: int,
    output_tokens: int,
    latency_slo_s: float,
    ttft_slo_s: float | None,
    max_batch: int,
) -> SloPoint | None:
    """Largest batch <= ``max_batch`` whose latency (and TTFT, if given) meets the SLO; None if even one
    request alone misses it. Latency and TTFT grow with batch, so the scan stops at the first miss."""
    best: SloPoint | None = None
    for batch in range(1, max_batch + 1):
        latency = curve.latency_s(prompt_tokens, output_tokens, batch)
        ttft = curve.ttft_s(prompt_tokens, batch)
        if latency > latency_slo_s or (ttft_slo_s is not None and ttft > ttft_slo_s):
            break
        best = SloPoint(
            batch=batch,
            latency_s=latency,
            ttft_s=ttft,
            tpot_s=curve.tpot_s(batch),
            throughput_rps=batch / latency,
        )
    return best
