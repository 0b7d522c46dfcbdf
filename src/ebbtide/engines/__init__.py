"""Engines: how each kind of replica server is launched, probed and scraped; ``build_engine`` picks one.

Names are imported lazily: ``python -m ebbtide.engines.llamacpp_worker`` starts every replica, and importing
the engines (pydantic config, aiohttp) on that path would add ~1.5 s to each cold start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ebbtide.engines.base import Engine, EngineStats, Health, LaunchPlan
    from ebbtide.engines.factory import build_engine
    from ebbtide.engines.llamacpp import LlamaCppEngine
    from ebbtide.engines.models import ModelNotFoundError, resolve_model_path
    from ebbtide.engines.openai import OpenAIEngine
    from ebbtide.engines.tgi import TgiEngine
    from ebbtide.engines.vllm import VllmEngine

__all__ = [
    "Engine",
    "EngineStats",
    "Health",
    "LaunchPlan",
    "LlamaCppEngine",
    "ModelNotFoundError",
    "OpenAIEngine",
    "TgiEngine",
    "VllmEngine",
    "build_engine",
    "resolve_model_path",
]

_HOMES = {
    "Engine": "base",
    "EngineStats": "base",
    "Health": "base",
    "LaunchPlan": "base",
    "LlamaCppEngine": "llamacpp",
    "ModelNotFoundError": "models",
    "OpenAIEngine": "openai",
    "TgiEngine": "tgi",
    "VllmEngine": "vllm",
    "build_engine": "factory",
    "resolve_model_path": "models",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
