"""Staged weights: remote GGUF files (``s3://``, ``http(s)://``) fetched into a node's content-addressed cache.

``stage_weights`` runs where the replica runs (the llama.cpp worker, or ``ebbtide stage`` ahead of time), so
on a Ray cluster every node fills its own cache. Nothing here imports boto3, pydantic or aiohttp at import time:
the worker imports this package on its start path.
"""

from __future__ import annotations

from ebbtide.weights.cache import InsufficientSpaceError, WeightsCache, cache_limit_from_env
from ebbtide.weights.fetch import FetchError, PermanentFetchError, StageError
from ebbtide.weights.sources import is_remote
from ebbtide.weights.stage import MAX_ATTEMPTS, Staged, StageReport, fetcher_for, stage_weights

__all__ = [
    "MAX_ATTEMPTS",
    "FetchError",
    "InsufficientSpaceError",
    "PermanentFetchError",
    "StageError",
    "StageReport",
    "Staged",
    "WeightsCache",
    "cache_limit_from_env",
    "fetcher_for",
    "is_remote",
    "stage_weights",
]
