"""Streaming aggregation of a run: memory is flat in the number of requests.

The current minute's latencies and TTFTs are kept raw (two arrays of doubles; the hot loop only appends), then
binned with numpy into fixed log-spaced histograms (2% buckets, clamped to the exact min/max seen) when the
minute closes, and merged into the SLO window (``slo.window_s``, 5 min) and the whole-run histogram. A window
meets the SLO when its P95 latency and P95 TTFT are within ``slo``; rejected requests count as misses (+inf),
and windows with no arrivals and no completions are left out. The per-minute timeline is kept in compact
columns."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TIMELINE_COLUMNS", "Histogram", "Mark", "Results", "percentile"]

LO_S = 1e-3
RATIO = 1.02
INV_LOG = 1.0 / math.log(RATIO)
N_BUCKETS = int(math.log(1e5 / LO_S) * INV_LOG) + 2
_EDGES = LO_S * RATIO ** np.arange(N_BUCKETS, dtype=np.float64)
MID = np.concatenate(([LO_S / 2], _EDGES[:-1] * math.sqrt(RATIO)))

TIMELINE_COLUMNS = (
    "minute",
    "arrivals",
    "completed",
    "rejected",
    "starting",
    "ready",
    "draining",
    "capacity",
    "queue",
    "p95_latency_s",
    "p95_ttft_s",
    "cost_usd",
)


def bucket(x: float) -> int:
    if x < LO_S:
        return 0
    i = int(math.log(x / LO_S) * INV_LOG) + 1
    return i if i < N_BUCKETS else N_BUCKETS - 1


def bin_counts(values: np.ndarray) -> np.ndarray:
    """Vectorised ``bucket`` over an array: counts per bucket."""
    if len(values) == 0:
        return np.zeros(N_BUCKETS, dtype=np.int64)
    idx = np.zeros(len(values), dtype=np.int64)
    big = values >= LO_S
    idx[big] = np.minimum((np.log(values[big] / LO_S) * INV_LOG).astype(np.int64) + 1, N_BUCKETS - 1)
    return np.bincount(idx, minlength=N_BUCKETS)


def percentile(counts: np.ndarray, q: float, overflow: int = 0) -> float | None:
    """The ``q`` quantile of a bucketed sample; ``overflow`` extra samples count as +inf. None if empty."""
    total = int(counts.sum()) + overflow
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    cum = np.cumsum(counts)
    if rank > cum[-1]:
        return math.inf
    return float(MID[int(np.searchsorted(cum, rank))])


@dataclass
class Histogram:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(N_BUCKETS, dtype=np.int64))
    lo: float = math.inf
    hi: float = 0.0

    def quantile(self, q: float) -> float | None:
        v = percentile(self.counts, q)
        return None if v is None else min(max(v, self.lo), self.hi)


@dataclass(frozen=True, slots=True)
class Mark:
    """Something to show on the plot: a scale decision or a change of bounds (e.g. a schedule action)."""

    t_s: float
    kind: str  # "out" | "in" | "bounds"
    text: str


class Results:
    """Per-minute buckets in, summary out. Times are seconds since the run's start."""

    def __init__(
        self, *, slo_latency_s: float, slo_ttft_s: float, window_s: float, minute_s: float = 60.0
    ) -> None:
        self.slo_latency_s, self.slo_ttft_s = slo_latency_s, slo_ttft_s
        self.window_minutes = max(1, round(window_s / minute_s))
        self.completed = self.output_tokens = 0
        self.rejected: dict[str, int] = {}
        self.latency, self.ttft = Histogram(), Histogram()
        self.m_lat, self.m_ttft = array("d"), array("d")  # this minute's completions, raw
        self.m_output_tokens = 0
        self._m_rejected = 0
        self.last_minute_mean_latency_s: float | None = None
        self._w_lat = np.zeros(N_BUCKETS, dtype=np.int64)
        self._w_ttft = np.zeros(N_BUCKETS, dtype=np.int64)
        self._w_rejected = self._w_activity = self._w_minutes = 0
        self.windows = self.windows_ok = 0
        # One entry per SLO window in time order: 1 met, 0 missed, -1 idle (not counted); per-day attainment.
        self.window_outcomes = array("b")
        self.minutes = 0
        self.timeline = {c: array("d") for c in TIMELINE_COLUMNS}
        self.marks: list[Mark] = []

    def complete(self, latency_s: float, ttft_s: float, output_tokens: int) -> None:
        self.m_lat.append(latency_s)
        self.m_ttft.append(min(ttft_s, latency_s))
        self.m_output_tokens += output_tokens

    @property
    def completed_total(self) -> int:
        return self.completed + len(self.m_lat)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._m_rejected += 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def close_minute(
        self,
        *,
        arrivals: int,
        starting: int,
        ready: int,
        draining: int,
        capacity: int,
        queue: int,
        cost_usd: float,
    ) -> None:
        raw_lat, raw_ttft = (
            np.frombuffer(self.m_lat, dtype=np.float64),
            np.frombuffer(self.m_ttft, dtype=np.float64),
        )
        lat, ttft = bin_counts(raw_lat), bin_counts(raw_ttft)
        rej, done = self._m_rejected, len(raw_lat)
        if done:
            self._extremes(raw_lat, raw_ttft)
        row = (
            self.minutes,
            arrivals,
            done,
            rej,
            starting,
            ready,
            draining,
            capacity,
            queue,
            _nan(percentile(lat, 0.95, rej)),
            _nan(percentile(ttft, 0.95, rej)),
            cost_usd,
        )
        for name, value in zip(TIMELINE_COLUMNS, row, strict=True):
            self.timeline[name].append(value)
        self.latency.counts += lat
        self.ttft.counts += ttft
        self.completed += done
        self.output_tokens += self.m_output_tokens
        self._w_lat += lat
        self._w_ttft += ttft
        self._w_rejected += rej
        self._w_activity += arrivals + done + rej
        self._w_minutes += 1
        if self._w_minutes == self.window_minutes:
            self._close_window()
        self.m_lat, self.m_ttft = array("d"), array("d")
        self.m_output_tokens = self._m_rejected = 0
        self.minutes += 1

    def _extremes(self, lat: np.ndarray, ttft: np.ndarray) -> None:
        self.last_minute_mean_latency_s = float(lat.mean())
        self.latency.lo, self.latency.hi = (
            min(self.latency.lo, float(lat.min())),
            max(self.latency.hi, float(lat.max())),
        )
        self.ttft.lo, self.ttft.hi = (
            min(self.ttft.lo, float(ttft.min())),
            max(self.ttft.hi, float(ttft.max())),
        )

    def _close_window(self) -> None:
        if self._w_activity:
            p_lat = percentile(self._w_lat, 0.95, self._w_rejected)
            p_ttft = percentile(self._w_ttft, 0.95, self._w_rejected)
            ok = (p_lat is None or p_lat <= self.slo_latency_s) and (
                p_ttft is None or p_ttft <= self.slo_ttft_s
            )
            self.windows += 1
            self.windows_ok += int(ok)
            self.window_outcomes.append(int(ok))
        else:
            self.window_outcomes.append(-1)
        self._w_lat[:] = 0
        self._w_ttft[:] = 0
        self._w_rejected = self._w_activity = self._w_minutes = 0

    def finish(self) -> None:
        """Close a partly filled last SLO window."""
        if self._w_minutes:
            self._close_window()

    @property
    def slo_attainment(self) -> float | None:
        return self.windows_ok / self.windows if self.windows else None


def _nan(v: float | None) -> float:
    return math.nan if v is None else v
