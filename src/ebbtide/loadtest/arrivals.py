"""When requests arrive, in wall seconds from the start: the twin's traffic (sim/traffic.py), time-compressed.

``--compress C`` plays C profile seconds per wall second *at the profile's own rates*: with C = 1440 a whole
business day of seed 000's curve passes in 60 s, arriving at 1-40 requests/s as it would in the day. (Scaling
the profile by 1/C over C× its time span and dividing the times by C keeps the arrival process Poisson with
the profile's bursts.) A trace replays its timestamps C× faster. Both stop at ``duration_s`` and
``max_requests``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from ebbtide.sim.traces import TraceError, load_request_trace
from ebbtide.sim.traffic import PROFILES, TraceReplay, TrafficError, make_profile

__all__ = ["PROFILES", "Arrival", "ArrivalError", "profile_arrivals", "trace_arrivals"]

# Profiles read the local day of week: start on a fixed Monday so a run is reproducible by its seed alone.
_MONDAY = datetime(2025, 1, 6)


class ArrivalError(ValueError):
    """Bad traffic arguments, phrased for the user and naming the flag or file."""


@dataclass(frozen=True, slots=True)
class Arrival:
    at_s: float
    prompt_tokens: int
    output_tokens: int


def _check(compress: float, duration_s: float, max_requests: int) -> None:
    if not compress > 0:
        raise ArrivalError(f"--compress = {compress}: must be > 0")
    if not duration_s > 0:
        raise ArrivalError(f"--duration = {duration_s}: must be > 0 seconds")
    if max_requests < 1:
        raise ArrivalError(f"--max-requests = {max_requests}: must be >= 1")


def _collect(chunks: object, divide_by: float, duration_s: float, max_requests: int) -> list[Arrival]:
    out: list[Arrival] = []
    for times, prompts, outputs in chunks:  # type: ignore[attr-defined]
        for t, p, o in zip(times, prompts, outputs, strict=True):
            at = t / divide_by
            if at >= duration_s or len(out) >= max_requests:
                return out
            out.append(Arrival(at, int(p), int(o)))
    return out


def profile_arrivals(
    name: str, *, compress: float, duration_s: float, max_requests: int, seed: int = 0,
    tz: str = "America/New_York", start_hour: float = 0.0, rate_scale: float = 1.0, rps: float | None = None,
) -> list[Arrival]:
    """Arrivals of profile ``name`` starting at ``start_hour`` local time on a Monday (weekday curve)."""
    _check(compress, duration_s, max_requests)
    if not 0 <= start_hour < 24 * 7:
        raise ArrivalError(f"--start-hour = {start_hour}: must be in [0, 168) (hours after Monday 00:00)")
    try:
        traffic = make_profile(name, tz=tz, rate_scale=rate_scale / compress, rps=rps)
        start = (_MONDAY.replace(tzinfo=ZoneInfo(tz)) + timedelta(hours=start_hour)).timestamp()
    except (TrafficError, ValueError, KeyError) as exc:
        raise ArrivalError(str(exc)) from None
    chunks = traffic.chunks(start, start + duration_s * compress, np.random.default_rng(seed))
    return _collect(chunks, compress, duration_s, max_requests)


def trace_arrivals(
    path: Path, *, compress: float, duration_s: float, max_requests: int, loop: bool = False
) -> list[Arrival]:
    """A request trace (``TIMESTAMP,ContextTokens,GeneratedTokens``) replayed ``compress``× faster."""
    _check(compress, duration_s, max_requests)
    try:
        trace = load_request_trace(path)
    except (TraceError, OSError) as exc:
        raise ArrivalError(str(exc)) from None
    if len(trace) == 0:
        raise ArrivalError(f"{path}: the trace has no requests")
    replay = TraceReplay(trace, rate_scale=compress, loop=loop)
    chunks = replay.chunks(0.0, duration_s, np.random.default_rng(0))
    return _collect(chunks, 1.0, duration_s, max_requests)
