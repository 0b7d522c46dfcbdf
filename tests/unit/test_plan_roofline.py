"""Roofline: hand-checked cases, calibration from the published vLLM figures, the SLO search."""

from __future__ import annotations

import pytest

from ebbtide.plan.hardware import default_catalog
from ebbtide.plan.roofline import (
    PEAK,
    Efficiency,
    calibrated_bandwidth_efficiency,
    calibration_points,
    compute_flops_per_s,
    default_efficiency,
    service_curve,
    throughput_at_slo,
)
from ebbtide.plan.sizing import PRESETS

CAT = default_catalog()
L70 = PRESETS["llama-3-70b"]
L8 = PRESETS["llama-3-8b"]


def test_70b_fp16_on_8_a10g_decode_floor_by_hand() -> None:
    curve = service_curve(L70, "fp16", CAT, "ml.g5.48xlarge", context_tokens=0, efficiency=PEAK)
    # 70.55e9 params x 2 B = 141.1e9 B read per step; 8 GPUs x 600e9 B/s = 4.8e12 B/s
    assert curve.tpot_s(1) == pytest.approx(141.1e9 / 4.8e12, rel=1e-12)
    assert curve.tpot_s(1) == pytest.approx(0.029395833, rel=1e-6)
    assert 300 * curve.tpot_s(1) == pytest.approx(8.81875, rel=1e-6)
    assert 300 * curve.tpot_s(64) > 3.0


def test_8b_fp16_on_one_a10g_batch_16_by_hand() -> None:
    curve = service_curve(L8, "fp16", CAT, "g5.12xlarge", tp=1, context_tokens=1000, efficiency=PEAK)
    # weights 8.03e9 x 2 = 16.06e9 B; KV 16 seqs x 131,072 B/token x 1,000 tokens = 2.097152e9 B
    # (16.06e9 + 2.097152e9) / 600e9 B/s = 0.03026192 s
    # compute: 2 x 8.03e9 x 16 / 70e12 = 0.00367 s, not binding
    assert curve.tpot_s(16) == pytest.approx(0.03026192, rel=1e-9)


def test_prefill_is_compute_bound_by_hand() -> None:
    eff = Efficiency(bandwidth=1.0, compute=0.5)
    curve = service_curve(L70, "fp16", CAT, "ml.g5.48xlarge", context_tokens=0, efficiency=eff)
    # 2 x 70.55e9 x 800 FLOP / (8 x 70e12 x 0.5 FLOP/s) = 1.1288e14 / 2.8e14
    assert curve.prefill_s(800) == pytest.approx(0.40314285714, rel=1e-9)
    assert curve.ttft_s(800, 1) == pytest.approx(curve.prefill_s(800) + curve.tpot_s(1))
    assert curve.latency_s(800, 300, 1) == pytest.approx(curve.prefill_s(800) + 300 * curve.tpot_s(1))


def test_calibrated_efficiency_from_published_vllm_tpot() -> None:
    points = {p.name: p for p in calibration_points(CAT)}
    h100 = points["vllm-llama-3-70b-4xh100"]
    a100 = points["vllm-llama-3-70b-4xa100"]
    assert h100.floor_ms == pytest.approx(141.1e9 / (4 * 3350e9) * 1e3)
    assert h100.efficiency == pytest.approx(10.52985 / 22, rel=1e-5)
    assert a100.efficiency == pytest.approx(141.1e9 / (4 * 2039e9) * 1e3 / 38, rel=1e-9)
    assert calibrated_bandwidth_efficiency(CAT) == a100.efficiency == default_efficiency().bandwidth
    assert 0.45 < a100.efficiency < h100.efficiency < 0.48


def test_precision_picks_the_tensor_rate() -> None:
    a10g, h100 = CAT.gpus["A10G"], CAT.gpus["H100-80GB"]
    assert compute_flops_per_s(a10g, "fp8") == compute_flops_per_s(a10g, "bf16") == 70e12
    assert compute_flops_per_s(h100, "fp8") == 1979e12
    assert compute_flops_per_s(h100, "int8") == 1979e12
    assert compute_flops_per_s(h100, "int4-awq") == 989.5e12


def test_efficiency_bounds() -> None:
    with pytest.raises(ValueError, match=r"efficiency\.bandwidth = 0"):
        Efficiency(bandwidth=0, compute=0.5)
    with pytest.raises(ValueError, match=r"efficiency\.compute = 1\.5"):
        Efficiency(bandwidth=0.5, compute=1.5)


def test_tpot_grows_with_batch_and_context() -> None:
    curve = service_curve(L70, "fp8", CAT, "ml.p5.48xlarge", context_tokens=950)
    longer = service_curve(L70, "fp8", CAT, "ml.p5.48xlarge", context_tokens=4000)
    tpots = [curve.tpot_s(b) for b in (1, 8, 64, 256)]
    assert tpots == sorted(tpots) and tpots[0] < tpots[-1]
    assert longer.tpot_s(64) > curve.tpot_s(64)


def test_throughput_at_slo_is_the_largest_batch_meeting_it() -> None:
    curve = service_curve(L70, "fp8", CAT, "ml.p5.48xlarge", context_tokens=950)
    point = throughput_at_slo(
        curve, prompt_tokens=800, output_tokens=300, latency_slo_s=3.0, ttft_slo_s=None, max_batch=512
    )
    assert point is not None
    assert point.latency_s <= 3.0 < curve.latency_s(800, 300, point.batch + 1)
    assert point.throughput_rps == pytest.approx(point.batch / point.latency_s)
    capped = throughput_at_slo(
        curve, prompt_tokens=800, output_tokens=300, latency_slo_s=3.0, ttft_slo_s=None, max_batch=4
    )
    assert capped is not None and capped.batch == 4
    tight_ttft = throughput_at_slo(
        curve,
        prompt_tokens=800,
        output_tokens=300,
        latency_slo_s=3.0,
        ttft_slo_s=curve.ttft_s(800, 10),
        max_batch=512,
    )
    assert tight_ttft is not None and tight_ttft.batch == 10


def test_throughput_at_slo_none_when_one_request_misses() -> None:
    curve = service_curve(L70, "fp16", CAT, "ml.g5.48xlarge", context_tokens=950)
    assert (
        throughput_at_slo(
            curve, prompt_tokens=800, output_tokens=300, latency_slo_s=3.0, ttft_slo_s=None, max_batch=62
        )
        is None
    )
