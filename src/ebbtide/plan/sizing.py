"""Memory sizing: weight bytes by precision, KV-cache bytes per token from the model's shape, and which
instances hold a model at which tensor-parallel degree with how many concurrent sequences.

Units are decimal (1 GB = 1e9 bytes), as in seed 003's table and in GPU datasheets. Pure functions except
:func:`model_from_config_file`, which reads a Hugging Face ``config.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from ebbtide.plan.hardware import Catalog, InstanceSpec

__all__ = [
    "DEFAULT_OVERHEAD",
    "INT4_AWQ_GROUP_SIZE",
    "PRECISIONS",
    "PRESETS",
    "Fit",
    "ModelShape",
    "Precision",
    "SizingError",
    "bytes_per_param",
    "estimate_params",
    "fits",
    "format_gb",
    "kv_bytes_per_token",
    "max_concurrent_sequences",
    "model_from_config",
    "model_from_config_file",
    "nominal_bytes_per_param",
    "resolve_model",
    "tp_degrees",
    "weight_bytes",
]

Precision = Literal["fp16", "bf16", "fp8", "int8", "int4-awq"]
PRECISIONS: tuple[str, ...] = get_args(Precision)

_NOMINAL_BYTES: dict[str, float] = {"fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4-awq": 0.5}

INT4_AWQ_GROUP_SIZE = 128
"""AWQ stores one FP16 scale and one 4-bit zero point per group of 128 weights (AutoAWQ's default)."""

DEFAULT_OVERHEAD = 0.2
"""Memory that is neither weights nor KV cache (activations, CUDA context and graphs, NCCL buffers,
allocator slack), as a fraction of weight bytes. Seed 003 says "add 20-30%" for KV cache, activations and
framework together; KV is counted separately here, so the low end of that range is already conservative
(vLLM's default ``gpu_memory_utilization`` 0.9 alone holds back ~12-14% of the weights' size when weights fill
70-80% of the GPUs)."""


class SizingError(ValueError):
    """A model shape or config.json that cannot be sized; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelShape:
    """What sizing needs to know about a decoder-only transformer."""

    name: str
    params: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_context_tokens: int


def _llama3(
    name: str, *, params: float, layers: int, hidden_size: int, attention_heads: int, max_context_tokens: int
) -> ModelShape:
    """A Llama 3 size: all of them have 8 KV heads of 128 dims and a 128,256-token vocabulary."""
    return ModelShape(
        name=name,
        params=params,
        layers=layers,
        hidden_size=hidden_size,
        attention_heads=attention_heads,
        kv_heads=8,
        head_dim=128,
        vocab_size=128_256,
        max_context_tokens=max_context_tokens,
    )


PRESETS: dict[str, ModelShape] = {
    shape.name: shape
    for shape in (
        _llama3("llama-3-8b", params=8.03e9, layers=32, hidden_size=4096, attention_heads=32, max_context_tokens=8192),
        _llama3(
            "llama-3-70b", params=70.55e9, layers=80, hidden_size=8192, attention_heads=64, max_context_tokens=8192
        ),
        _llama3(
            "llama-3.1-405b",
            params=405.85e9,
            layers=126,
            hidden_size=16384,
            attention_heads=128,
            max_context_tokens=131_072,
        ),
    )
}
"""Shapes from the ``config.json`` of meta-llama/Meta-Llama-3-8B, Meta-Llama-3-70B and Llama-3.1-405B on
Hugging Face; parameter counts from :func:`estimate_params` on those configs (8.03B, 70.55B, 405.85B)."""


def nominal_bytes_per_param(precision: str) -> float:
    """Bytes per parameter as the seed's table counts them: 16, 8 or 4 bits, nothing else."""
    try:
        return _NOMINAL_BYTES[precision]
    except KeyError:
        raise SizingError(f"precision = {precision!r}: must be one of {', '.join(PRECISIONS)}") from None


def bytes_per_param(precision: str) -> float:
    """Bytes per parameter as stored: INT4-AWQ adds a 2-byte scale and a 4-bit zero per group of 128."""
    nominal = nominal_bytes_per_param(precision)
    if precision == "int4-awq":
        return nominal + (2.0 + 0.5) / INT4_AWQ_GROUP_SIZE
    return nominal


def weight_bytes(params: float, precision: str, *, nominal: bool = False) -> float:
    """Weight bytes = params x bytes per parameter (``nominal`` drops the AWQ group overhead)."""
    per = nominal_bytes_per_param(precision) if nominal else bytes_per_param(precision)
    return params * per


def kv_bytes_per_token(model: ModelShape, kv_precision: str = "fp16") -> float:
    """KV cache per token = 2 (K and V) x layers x KV heads x head dim x bytes per element."""
    return 2 * model.layers * model.kv_heads * model.head_dim * nominal_bytes_per_param(kv_precision)


def format_gb(num_bytes: float) -> str:
    """Decimal GB to three significant figures, halves rounded up, as seed 003 prints them (202.5 -> 203)."""
    gb = Decimal(repr(num_bytes / 1e9))
    if gb == 0:
        return "0"
    exponent = gb.adjusted() - 2
    rounded = gb.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
    text = format(rounded.normalize(), "f")
    return text


def estimate_params(
    *,
    layers: int,
    hidden_size: int,
    attention_heads: int,
    kv_heads: int,
    head_dim: int,
    vocab_size: int,
    intermediate_size: int,
    tie_word_embeddings: bool = False,
) -> float:
    """Parameters of a Llama-style block stack: attention (Q, K, V, O), gated MLP (3 matrices), two norms
    per layer, embeddings and (unless tied) the output head, and the final norm."""
    attention = hidden_size * attention_heads * head_dim * 2 + hidden_size * kv_heads * head_dim * 2
    mlp = 3 * hidden_size * intermediate_size
    per_layer = attention + mlp + 2 * hidden_size
    embeddings = vocab_size * hidden_size * (1 if tie_word_embeddings else 2)
    return float(layers * per_layer + embeddings + hidden_size)


def _require_int(config: dict[str, Any], key: str, source: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SizingError(f"{source}: {key} = {value!r}: must be a positive integer")
    return value


def model_from_config(config: dict[str, Any], *, name: str, params: float | None = None) -> ModelShape:
    """A :class:`ModelShape` from a parsed Hugging Face ``config.json``; ``params`` overrides the estimate."""
    layers = _require_int(config, "num_hidden_layers", name)
    hidden = _require_int(config, "hidden_size", name)
    heads = _require_int(config, "num_attention_heads", name)
    kv_heads = _require_int(config, "num_key_value_heads", name) if "num_key_value_heads" in config else heads
    if config.get("head_dim") is not None:
        head_dim = _require_int(config, "head_dim", name)
    elif hidden % heads:
        raise SizingError(
            f"{name}: hidden_size = {hidden} is not a multiple of num_attention_heads = {heads}"
        )
    else:
        head_dim = hidden // heads
    if heads % kv_heads:
        raise SizingError(f"{name}: num_attention_heads = {heads} is not a multiple of num_key_value_heads")
    vocab = _require_int(config, "vocab_size", name)
    if params is None:
        params = estimate_params(
            layers=layers,
            hidden_size=hidden,
            attention_heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            vocab_size=vocab,
            intermediate_size=_require_int(config, "intermediate_size", name),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
    elif params <= 0:
        raise SizingError(f"{name}: params = {params}: must be positive")
    context = config.get("max_position_embeddings")
    max_context = context if isinstance(context, int) and context > 0 else 4096
    return ModelShape(
        name=name,
        params=params,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        max_context_tokens=max_context,
    )


def model_from_config_file(path: Path, *, params: float | None = None) -> ModelShape:
    """Read a Hugging Face ``config.json``; errors name the file."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SizingError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SizingError(f"{path}: must be a JSON object")
    return model_from_config(raw, name=str(path), params=params)


def resolve_model(spec: str, *, params: float | None = None) -> ModelShape:
    """A preset name, or a path to a ``config.json``."""
    if spec in PRESETS:
        preset = PRESETS[spec]
        if params is None:
            return preset
        return replace(preset, params=params)
    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        return model_from_config_file(path, params=params)
    raise SizingError(f"model = {spec!r}: must be one of {', '.join(PRESETS)} or a path to a config.json")


def tp_degrees(model: ModelShape, gpu_count: int) -> list[int]:
    """Tensor-parallel degrees that divide both the GPU count and the number of KV heads."""
    return [tp for tp in range(1, gpu_count + 1) if gpu_count % tp == 0 and model.kv_heads % tp == 0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fit:
    """How a model sits on ``tp`` GPUs of an instance; ``kv_budget_bytes`` is left for the KV cache."""

    instance: str
    tp: int
    replicas_per_instance: int
    memory_bytes: float
    weight_bytes: float
    overhead_bytes: float
    kv_budget_bytes: float
    max_sequences: int


def max_concurrent_sequences(kv_budget: float, kv_per_token: float, context_tokens: int) -> int:
    """Sequences of ``context_tokens`` whose KV cache fits in ``kv_budget`` bytes."""
    if kv_budget <= 0 or context_tokens <= 0:
        return 0
    return math.floor(kv_budget / (kv_per_token * context_tokens))


def fits(
    model: ModelShape,
    precision: str,
    catalog: Catalog,
    instance: str,
    tp: int,
    *,
    context_tokens: int,
    overhead: float = DEFAULT_OVERHEAD,
    kv_precision: str = "fp16",
) -> Fit:
    """Memory arithmetic for one (instance, TP) choice; ``max_sequences == 0`` means it does not fit."""
    spec: InstanceSpec = catalog.instance(instance)
    gpu = catalog.gpus[spec.gpu]
    memory = tp * gpu.memory_bytes
    weights = weight_bytes(model.params, precision)
    extra = weights * overhead
    budget = memory - weights - extra
    return Fit(
        instance=instance,
        tp=tp,
        replicas_per_instance=spec.gpus // tp,
        memory_bytes=memory,
        weight_bytes=weights,
        overhead_bytes=extra,
        kv_budget_bytes=budget,
        max_sequences=max_concurrent_sequences(
            budget, kv_bytes_per_token(model, kv_precision), context_tokens
        ),
    )
