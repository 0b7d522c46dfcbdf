"""Helpers shared by the engines: a short-timeout status probe and a Prometheus text reader."""

from __future__ import annotations

import math

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["HEALTH_TIMEOUT_S", "first", "get_status", "sample_values"]

HEALTH_TIMEOUT_S = 2.0


async def get_status(
    session: aiohttp.ClientSession, url: str, timeout_s: float = HEALTH_TIMEOUT_S
) -> int | None:
    """HTTP status of ``GET url``, or None when nothing answered in time (refused, reset, timeout)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(url, timeout=timeout, allow_redirects=False) as resp:
            await resp.read()
            return resp.status
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None


def sample_values(text: str) -> dict[str, list[float]]:
    """Every sample of a Prometheus text exposition by sample name (``_total``/``_sum`` kept), per series.

    Raises ValueError when the text is not a valid exposition. NaN samples are dropped.
    """
    out: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not math.isnan(sample.value):
                    out.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"not a Prometheus text exposition: {exc}") from exc
    return out


def first(values: dict[str, list[float]], *names: str, reduce: str = "sum") -> float | None:
    """The first of ``names`` present, its series summed (or maxed with ``reduce="max"``); None if absent."""
    for name in names:
        series = values.get(name)
        if series:
            return max(series) if reduce == "max" else math.fsum(series)
    return None
