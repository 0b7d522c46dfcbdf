"""Summaries of a load run: achieved rate, latency/TTFT percentiles, outcomes by status code. Pure."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LoadReport", "Outcome", "percentiles", "summarize"]

QUANTILES = (0.5, 0.9, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request. ``code``: the HTTP status as text, ``error:<Exception>``, ``timeout`` or ``dropped``."""

    code: str
    scheduled_s: float
    lateness_s: float = 0.0
    latency_s: float | None = None
    ttft_s: float | None = None
    output_chunks: int = 0
    engine_ms_per_token: float | None = None  # the engine's own decode time per token (llama.cpp ``timings``)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p95/p99/max by the nearest-rank method (no interpolation: every value was observed)."""
    if not values:
        return {**{f"p{round(q * 100)}": None for q in QUANTILES}, "max": None}
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in QUANTILES:
        rank = max(1, math.ceil(q * len(ordered)))
        out[f"p{round(q * 100)}"] = ordered[rank - 1]
    out["max"] = ordered[-1]
    return out


@dataclass(frozen=True)
class LoadReport:
    url: str
    source: str
    stream: bool
    scheduled: int
    sent: int
    completed_ok: int
    elapsed_s: float
    offered_rps: float
    achieved_rps: float
    codes: dict[str, int]
    latency_s: dict[str, float | None]
    ttft_s: dict[str, float | None]
    lateness_s: dict[str, float | None]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code != "200")


def summarize(
    outcomes: Iterable[Outcome], *, url: str, source: str, stream: bool, scheduled: int, window_s: float,
    elapsed_s: float, notes: list[str] | None = None,
) -> LoadReport:
    """``window_s``: the span arrivals were offered over; ``elapsed_s`` includes waiting for the answers."""
    items = list(outcomes)
    ok = [o for o in items if o.code == "200"]
    codes = dict(sorted(Counter(o.code for o in items).items()))
    sent = sum(1 for o in items if o.code != "dropped")
    return LoadReport(
        url=url, source=source, stream=stream, scheduled=scheduled, sent=sent, completed_ok=len(ok),
        elapsed_s=elapsed_s,
        offered_rps=scheduled / window_s if window_s > 0 else 0.0,
        achieved_rps=len(ok) / elapsed_s if elapsed_s > 0 else 0.0,
        codes=codes,
        latency_s=percentiles([o.latency_s for o in ok if o.latency_s is not None]),
        ttft_s=percentiles([o.ttft_s for o in ok if o.ttft_s is not None]),
        lateness_s=percentiles([o.lateness_s for o in items if o.code != "dropped"]),
        notes=list(notes or []),
    )
