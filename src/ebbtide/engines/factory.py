"""``build_engine``: the engine for a pool's ``engine:`` spec, dispatched on ``kind`` by a literal dict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ebbtide.config import LlamaCppEngineSpec, OpenAIEngineSpec, TgiEngineSpec, VllmEngineSpec
from ebbtide.engines.base import Engine
from ebbtide.engines.llamacpp import DEFAULT_LEASE_TIMEOUT_S, LlamaCppEngine
from ebbtide.engines.models import resolve_model
from ebbtide.engines.openai import OpenAIEngine
from ebbtide.engines.tgi import TgiEngine
from ebbtide.engines.vllm import VllmEngine

__all__ = ["AnyEngineSpec", "build_engine"]

AnyEngineSpec = LlamaCppEngineSpec | VllmEngineSpec | TgiEngineSpec | OpenAIEngineSpec


def _llamacpp(spec: AnyEngineSpec, cache: Path | None, lease_timeout_s: float) -> Engine:
    assert isinstance(spec, LlamaCppEngineSpec)
    model = resolve_model(spec.model, cache, sha256=spec.sha256, cache_limit_gb=spec.cache_limit_gb)
    return LlamaCppEngine(spec, model, lease_timeout_s=lease_timeout_s)


def _vllm(spec: AnyEngineSpec, cache: Path | None, lease_timeout_s: float) -> Engine:
    assert isinstance(spec, VllmEngineSpec)
    return VllmEngine(spec)


def _tgi(spec: AnyEngineSpec, cache: Path | None, lease_timeout_s: float) -> Engine:
    assert isinstance(spec, TgiEngineSpec)
    return TgiEngine(spec)


def _openai(spec: AnyEngineSpec, cache: Path | None, lease_timeout_s: float) -> Engine:
    assert isinstance(spec, OpenAIEngineSpec)
    return OpenAIEngine(spec)


_BUILDERS: dict[str, Callable[[AnyEngineSpec, Path | None, float], Engine]] = {
    "llamacpp": _llamacpp,
    "vllm": _vllm,
    "tgi": _tgi,
    "openai": _openai,
}


def build_engine(
    spec: AnyEngineSpec,
    model_cache_dir: Path | None = None,
    *,
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
) -> Engine:
    """The engine for a pool's ``engine:`` spec; llama.cpp resolves a local model now (ModelNotFoundError).

    Remote llama.cpp weights are only checked here; each replica stages them on its node when it starts.
    """
    return _BUILDERS[spec.kind](spec, model_cache_dir, lease_timeout_s)
