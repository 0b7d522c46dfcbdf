"""Helpers shared by the engines: a short-timeout status and health probe, the constructor and readiness of
launched servers that open their port only once loaded, and a Prometheus text reader."""

from __future__ import annotations

import math
from typing import Generic, Protocol, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ebbtide.engines.base import Health, PauseStyle

__all__ = [
    "HEALTH_TIMEOUT_S",
    "WARM_UP_TIMEOUT_S",
    "LoadedOnlyServerEngine",
    "NoStandbyHooks",
    "first",
    "get_status",
    "post_json",
    "probe_health",
    "sample_values",
]

HEALTH_TIMEOUT_S = 2.0
WARM_UP_TIMEOUT_S = 120.0


async def post_json(
    session: aiohttp.ClientSession, url: str, body: dict[str, object] | None, timeout_s: float
) -> int | None:
    """HTTP status of ``POST url`` with a JSON body (read in full), or None when nothing answered in time."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.post(url, json=body, timeout=timeout, allow_redirects=False) as resp:
            await resp.read()
            return resp.status
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None


class NoStandbyHooks:
    """An engine with nothing to stage for a warm standby and no sleep endpoints of its own; its warm-up is a
    1-token ``/v1/completions`` request."""

    pause: PauseStyle = "none"

    def stage_plan(self) -> None:
        return None

    def warm_up_body(self) -> dict[str, object]:
        return {"prompt": "Hi", "max_tokens": 1, "temperature": 0}

    async def warm_up(self, session: aiohttp.ClientSession, base_url: str) -> bool:
        url = f"{base_url.rstrip('/')}/v1/completions"
        return await post_json(session, url, self.warm_up_body(), WARM_UP_TIMEOUT_S) == 200

    async def sleep(self, session: aiohttp.ClientSession, base_url: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no sleep endpoint")

    async def wake(self, session: aiohttp.ClientSession, base_url: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no wake endpoint")


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


async def probe_health(
    session: aiohttp.ClientSession, base_url: str, timeout_s: float, *, loading_status: int | None = None
) -> Health:
    """``GET {base_url}/health``: 200 → READY, ``loading_status`` (for a server that answers while it loads) →
    LOADING, any other status or no answer in time → DOWN."""
    status = await get_status(session, f"{base_url.rstrip('/')}/health", timeout_s)
    if status == 200:
        return Health.READY
    if loading_status is not None and status == loading_status:
        return Health.LOADING
    return Health.DOWN


class _SlotsSpec(Protocol):
    @property
    def slots(self) -> int: ...


SpecT = TypeVar("SpecT", bound=_SlotsSpec)


class LoadedOnlyServerEngine(NoStandbyHooks, Generic[SpecT]):
    """Constructor and ``health`` of an engine whose server the provider launches and which opens its port only
    once the model is loaded (vLLM, TGI): a loading replica is DOWN, and the provider's startup timeout tells
    "still loading" from "failed". Subclasses set ``kind`` and add ``launch_plan``, ``parse_metrics`` and
    ``upstream_model``."""

    launches = True

    def __init__(self, spec: SpecT, *, health_timeout_s: float = HEALTH_TIMEOUT_S,
                 host: str = "127.0.0.1") -> None:
        self.spec = spec
        self.slots = spec.slots
        self.health_timeout_s = health_timeout_s
        self.host = host

    async def health(self, session: aiohttp.ClientSession, base_url: str) -> Health:
        return await probe_health(session, base_url, self.health_timeout_s)


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
