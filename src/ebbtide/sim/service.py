"""Service models of a modelled replica: how long prefill (TTFT) and one decode step (TPOT) take at each batch
size up to ``slots``. ``seed_assumed`` (the seed's own claim), ``calibration_model`` (a table measured by
``ebbtide calibrate``, optionally with a lognormal spread per request), ``roofline`` (a small hardware catalog,
``HARDWARE``; the planner's is ``plan/hardware.py``) and ``from_curve`` (any planner curve); ``service_model``
picks one from a pool's ``sim.service``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Protocol

from ebbtide.config.sim import RooflineService, SeedAssumedService, TableService

__all__ = [
    "HARDWARE",
    "Hardware",
    "ServiceCurveLike",
    "ServiceModel",
    "calibration_model",
    "from_curve",
    "load_calibration",
    "lognormal_fit",
    "seed_assumed",
    "service_model",
]


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """Tables per batch size (index = batch size, 1..slots) and the prompt length TTFT figures refer to."""

    label: str
    slots: int
    ttft_by_batch: tuple[float, ...]
    tpot_by_batch: tuple[float, ...]
    prompt_ref_tokens: int
    prefill_fixed_share: float = 0.3
    # Log-sd of each request's TTFT / TPOT multiplier per batch size (median 1); empty = no per-request spread.
    ttft_sigma_by_batch: tuple[float, ...] = ()
    tpot_sigma_by_batch: tuple[float, ...] = ()

    @property
    def has_spread(self) -> bool:
        return any(s > 0 for s in (*self.ttft_sigma_by_batch, *self.tpot_sigma_by_batch))

    def ttft_s(self, prompt_tokens: int, batch: int) -> float:
        scale = (
            self.prefill_fixed_share + (1 - self.prefill_fixed_share) * prompt_tokens / self.prompt_ref_tokens
        )
        return self.ttft_by_batch[batch] * scale

    def tpot_s(self, batch: int) -> float:
        return self.tpot_by_batch[batch]

    def latency_s(self, prompt_tokens: int, output_tokens: int, batch: int) -> float:
        """End-to-end seconds of one request at a steady batch (used for wait estimates and docs)."""
        return self.ttft_s(prompt_tokens, batch) + max(output_tokens - 1, 0) * self.tpot_s(batch)


def seed_assumed(spec: SeedAssumedService, slots: int) -> ServiceModel:
    """Seed 000's assumption: at ``rps_per_replica`` a typical request takes ``typical_latency_s``.

    Little's law gives the nominal batch b_n = rps × latency; TTFT and TPOT are the nominal figures at b_n and
    scale as (0.5 + 0.5 b/b_n): half fixed cost, half proportional to the batch. Throughput then saturates
    near slots / latency(slots). This is what "target 600/min" implies, not physics (see
    docs/seed-wednesday.md)."""
    b_n = max(1.0, spec.rps_per_replica * spec.typical_latency_s)
    tpot_n = (spec.typical_latency_s - spec.ttft_s) / (spec.output_tokens - 1)
    factors = [0.5 + 0.5 * b / b_n for b in range(slots + 1)]
    return ServiceModel(
        f"as assumed by the seed: {spec.rps_per_replica:g} RPS/replica, typical "
        f"{spec.prompt_tokens}/{spec.output_tokens} tokens in {spec.typical_latency_s:g} s",
        slots,
        tuple(spec.ttft_s * f for f in factors),
        tuple(tpot_n * f for f in factors),
        spec.prompt_tokens,
    )


def load_calibration(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read calibration table: {exc}") from exc
    levels = data.get("levels")
    if not isinstance(levels, list) or not levels:
        raise ValueError(f"{path}: `levels` must be a non-empty list")
    for i, lv in enumerate(levels):
        for key in ("concurrency", "ttft_p50_s", "tpot_p50_s"):
            if not isinstance(lv.get(key), int | float) or lv[key] <= 0:
                raise ValueError(f"{path}: levels[{i}].{key} = {lv.get(key)!r}: must be a number > 0")
    return data


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    if len(xs) == 1:
        return ys[0] * x / xs[0] if x > xs[0] else ys[0]
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + w * (ys[i] - ys[i - 1])
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return ys[-1] + max(slope, 0.0) * (x - xs[-1])


def _interp_flat(xs: list[float], ys: list[float], x: float) -> float:
    """Linear between the measured points, held constant outside them (for log-sds, which do not grow)."""
    return _interp(xs, ys, min(max(x, xs[0]), xs[-1]))


def _order_stat_z(q: float, n: int) -> float:
    """Normal quantile that ``calibrate``'s q-quantile of n samples (the ceil(q·n)-th smallest) estimates:
    Blom's plotting position, so the "p95" of 4 samples (their maximum) counts as ~p85, not p95."""
    if n <= 0:
        return NormalDist().inv_cdf(q)
    k = max(1, math.ceil(q * n))
    return NormalDist().inv_cdf((k - 0.375) / (n + 0.25))


def lognormal_fit(p50: float, p95: float | None, requests: int = 0) -> tuple[float, float]:
    """(median, log-sd) of the lognormal through the recorded p50 and p95 of ``requests`` samples; log-sd 0 when
    the table has no spread to fit (p95 missing or not above p50, or one sample)."""
    if p95 is None or p95 <= p50:
        return p50, 0.0
    z50, z95 = _order_stat_z(0.5, requests), _order_stat_z(0.95, requests)
    if z95 <= z50:
        return p50, 0.0
    sigma = math.log(p95 / p50) / (z95 - z50)
    return p50 * math.exp(-z50 * sigma), sigma


def calibration_model(
    spec: TableService, data: dict[str, Any], slots: int | None, source: str
) -> ServiceModel:
    levels = sorted(data["levels"], key=lambda lv: lv["concurrency"])
    xs = [float(lv["concurrency"]) for lv in levels]
    pct = spec.percentile
    n = slots or int(data.get("slots") or xs[-1])
    sizes = range(1, n + 1)
    spread = spec.spread and pct == "p50"
    tables: list[tuple[float, ...]] = []
    sigmas: list[tuple[float, ...]] = []
    for key in ("ttft", "tpot"):
        if spread:
            fits = [lognormal_fit(float(lv[f"{key}_p50_s"]), _num(lv.get(f"{key}_p95_s")),
                                  int(lv.get("requests") or 0)) for lv in levels]
            ys, ss = [f[0] for f in fits], [f[1] for f in fits]
            sigmas.append((ss[0], *(_interp_flat(xs, ss, b) for b in sizes)))
        else:
            ys = [float(lv.get(f"{key}_{pct}_s", lv[f"{key}_p50_s"])) for lv in levels]
        tables.append((ys[0], *(_interp(xs, ys, b) for b in sizes)))
    has_spread = any(s > 0 for ss in sigmas for s in ss)
    return ServiceModel(
        f"calibration table {source} ({pct}{', lognormal spread' if has_spread else ''})",
        n,
        tables[0],
        tables[1],
        int(data.get("prompt_tokens", 800)),
        ttft_sigma_by_batch=sigmas[0] if has_spread else (),
        tpot_sigma_by_batch=sigmas[1] if has_spread else (),
    )


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


@dataclass(frozen=True, slots=True)
class Hardware:
    name: str
    bandwidth_gb_s: float  # vendor datasheets (docs/REFERENCES); plan/hardware.py holds the cited catalog
    fp16_tflops: float  # dense tensor-core FP16, approximate


HARDWARE = {
    h.name: h
    for h in (
        Hardware("a10g", 600.0, 70.0),
        Hardware("l4", 300.0, 121.0),
        Hardware("l40s", 864.0, 362.0),
        Hardware("a100-40gb", 1555.0, 312.0),
        Hardware("a100-80gb", 2039.0, 312.0),
        Hardware("h100", 3350.0, 989.0),
    )
}


def roofline(spec: RooflineService, slots: int) -> ServiceModel:
    """Decode reads all weights plus every sequence's KV cache per step; prefill is compute-bound (2·params
    FLOPs/token)."""
    if spec.hardware not in HARDWARE:
        raise ValueError(f"sim.service.hardware = {spec.hardware!r}: unknown (known: {', '.join(HARDWARE)})")
    hw = HARDWARE[spec.hardware]
    bw = hw.bandwidth_gb_s * 1e9 * spec.gpus * spec.efficiency
    flops = hw.fp16_tflops * 1e12 * spec.gpus * spec.efficiency
    weights = spec.params_b * 1e9 * spec.bytes_per_param
    tpot = [(weights + b * spec.kv_bytes_per_token * spec.context_tokens) / bw for b in range(slots + 1)]
    prefill_per_token = 2 * spec.params_b * 1e9 / flops
    ttft = [800 * prefill_per_token * max(b, 1) ** 0.5 + tpot[b] for b in range(slots + 1)]
    return ServiceModel(
        f"roofline {spec.gpus} x {hw.name}, {spec.params_b:g}B at {spec.bytes_per_param:g} B/param",
        slots,
        tuple(ttft),
        tuple(tpot),
        800,
    )


class ServiceCurveLike(Protocol):
    """What ``plan.roofline.ServiceCurve`` offers: the hook through which the planner's models drive the twin."""

    def ttft_s(self, prompt_tokens: int, batch: int) -> float: ...

    def tpot_s(self, batch: int) -> float: ...


def from_curve(curve: ServiceCurveLike, slots: int, label: str, prompt_ref_tokens: int = 800) -> ServiceModel:
    """Tabulate any service curve per batch size; TTFT's fixed share is the decode step inside it."""
    ttft = [curve.ttft_s(prompt_ref_tokens, max(b, 1)) for b in range(slots + 1)]
    tpot = [curve.tpot_s(max(b, 1)) for b in range(slots + 1)]
    share = min(1.0, tpot[1] / ttft[1]) if ttft[1] > 0 else 1.0
    return ServiceModel(label, slots, tuple(ttft), tuple(tpot), prompt_ref_tokens, share)


def service_model(
    spec: SeedAssumedService | TableService | RooflineService, slots: int, base_dir: Path | None = None
) -> ServiceModel:
    if isinstance(spec, SeedAssumedService):
        return seed_assumed(spec, slots)
    if isinstance(spec, TableService):
        path = Path(spec.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return calibration_model(spec, load_calibration(path), slots, path.name)
    return roofline(spec, slots)
