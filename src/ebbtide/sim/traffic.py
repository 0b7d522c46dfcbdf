"""Arrivals for the twin: named profiles (non-homogeneous Poisson, piecewise constant), trace and rate-series
replay.

Every source yields chunks ``(times_s, prompt_tokens, output_tokens)`` in time order (seconds after the run's
start, which is an epoch time so profiles can read the local hour), about an hour at a time, so
memory stays flat however long the run. Randomness only from the ``numpy.random.Generator`` passed in.

``business-hours`` follows seed 000: overnight single digits with zero stretches, 09-11 ramp to ~15 RPS, 12-14
an average of 25 RPS with 40 RPS bursts, 14-18 between 20 and 10, near zero after 19:00; weekends low."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from ebbtide.sim.traces import RateTrace, RequestTrace

__all__ = [
    "PROFILES",
    "Arrivals",
    "BusinessHours",
    "ConstantRate",
    "RateSeries",
    "TokenModel",
    "TraceReplay",
    "Traffic",
    "TrafficError",
    "make_profile",
]

Arrivals = tuple[list[float], list[int], list[int]]
CELL_S = 10.0
HOUR_S = 3600.0

# (local hour, mean requests/s); linear in between. Seed 000's curve; weekends "low".
WEEKDAY = (
    (0, 1.5),
    (3, 1.0),
    (6, 1.5),
    (8, 3.0),
    (9, 6.0),
    (10, 11.0),
    (11, 15.0),
    (12, 25.0),
    (14, 25.0),
    (14.01, 20.0),
    (16, 15.0),
    (18, 10.0),
    (19, 2.0),
    (20, 0.8),
    (24, 1.5),
)
WEEKEND = ((0, 1.0), (9, 1.0), (13, 2.5), (18, 1.5), (24, 1.0))
LUNCH_BURST_RPS = 40.0


class TrafficError(ValueError):
    """Bad traffic input, phrased for the user and naming the flag or file."""


@dataclass(frozen=True, slots=True)
class TokenModel:
    """Lognormal token lengths with the given means (seed 000: ~800 in, ~300 out) and log-space spreads."""

    mean_prompt: float = 800.0
    sigma_prompt: float = 0.6
    mean_output: float = 300.0
    sigma_output: float = 0.45
    max_prompt: int = 16_384
    max_output: int = 4_096

    def sample(self, rng: np.random.Generator, n: int) -> tuple[list[int], list[int]]:
        p = rng.lognormal(math.log(self.mean_prompt) - self.sigma_prompt**2 / 2, self.sigma_prompt, n)
        o = rng.lognormal(math.log(self.mean_output) - self.sigma_output**2 / 2, self.sigma_output, n)
        prompt = np.clip(np.rint(p), 1, self.max_prompt).astype(np.int64)
        output = np.clip(np.rint(o), 1, self.max_output).astype(np.int64)
        return prompt.tolist(), output.tolist()


class Traffic(Protocol):
    name: str

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]: ...


def poisson_pieces(
    rng: np.random.Generator, starts: np.ndarray, widths: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """Exact non-homogeneous Poisson arrivals for a piecewise-constant rate: N ~ Poisson(rate·width), uniform
    in it."""
    n = rng.poisson(np.maximum(rates, 0.0) * widths)
    total = int(n.sum())
    times: np.ndarray = np.repeat(starts, n) + rng.random(total) * np.repeat(widths, n)
    times.sort()
    return times


def _interp(anchors: tuple[tuple[float, float], ...], hours: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.interp(hours, [a[0] for a in anchors], [a[1] for a in anchors])
    return out


@dataclass(frozen=True, slots=True)
class _Mode:
    """Two-state modulation of a cell: 'high' for ``fraction`` of the time at ``high_rate``, dwelling
    ``dwell_s``."""

    fraction: float
    dwell_s: float
    burst_rps: float | None  # absolute burst rate; None = zero (a quiet stretch)
    burst_factor: float = 0.0


def _mode(hour: float, weekend: bool) -> _Mode:
    if weekend or hour < 8 or hour >= 19:
        return _Mode(0.3, 300.0, None)
    if 12 <= hour < 14:
        return _Mode(0.2, 60.0, LUNCH_BURST_RPS)
    return _Mode(0.1, 60.0, None, burst_factor=1.6)


@dataclass
class BusinessHours:
    """Seed 000's business day in time zone ``tz``, with bursts and quiet stretches as a Markov-modulated
    Poisson."""

    tz: str = "America/New_York"
    scale: float = 1.0
    tokens: TokenModel = field(default_factory=TokenModel)
    name: str = "business-hours"

    def mean_rps(self, hour: float, weekend: bool) -> float:
        return self.scale * float(_interp(WEEKEND if weekend else WEEKDAY, np.asarray([hour]))[0])

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        tz, high = ZoneInfo(self.tz), False
        t0 = start_s
        while t0 < end_s:
            t1 = min(end_s, math.floor(t0 / HOUR_S) * HOUR_S + HOUR_S)
            local = datetime.fromtimestamp(t0, tz)
            weekend = local.weekday() >= 5
            starts = np.arange(t0, t1, CELL_S)
            widths = np.minimum(starts + CELL_S, t1) - starts
            hours = local.hour + local.minute / 60 + local.second / 3600 + (starts - t0) / HOUR_S
            means = self.scale * _interp(WEEKEND if weekend else WEEKDAY, hours)
            rates, high = self._modulate(rng, hours, means, widths, weekend, high)
            times = poisson_pieces(rng, starts, widths, rates)
            prompt, output = self.tokens.sample(rng, len(times))
            yield (times - start_s).tolist(), prompt, output
            t0 = t1

    def _modulate(
        self,
        rng: np.random.Generator,
        hours: np.ndarray,
        means: np.ndarray,
        widths: np.ndarray,
        weekend: bool,
        high: bool,
    ) -> tuple[np.ndarray, bool]:
        draws = rng.random(len(hours))
        rates = np.empty(len(hours))
        for i in range(len(hours)):
            mode, mean, w = _mode(float(hours[i]), weekend), float(means[i]), float(widths[i])
            p_exit = min(1.0, w / mode.dwell_s)
            p_enter = min(1.0, p_exit * mode.fraction / (1.0 - mode.fraction))
            high = draws[i] >= p_exit if high else draws[i] < p_enter
            peak = mode.burst_rps * self.scale if mode.burst_rps is not None else mode.burst_factor * mean
            peak = max(peak, mean)
            low = max(0.0, (mean - mode.fraction * peak) / (1.0 - mode.fraction))
            rates[i] = peak if high else low
        return rates, high


@dataclass
class ConstantRate:
    """``rps`` requests/s: Poisson, or evenly spaced when ``poisson`` is false (hand-computable tests)."""

    rps: float
    poisson: bool = True
    tokens: TokenModel = field(default_factory=TokenModel)
    fixed_tokens: tuple[int, int] | None = None
    name: str = "constant"

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        t0 = start_s
        k = 0
        while t0 < end_s:
            t1 = min(end_s, t0 + HOUR_S)
            if self.poisson:
                times = poisson_pieces(rng, np.asarray([t0]), np.asarray([t1 - t0]), np.asarray([self.rps]))
            else:
                n_end = math.ceil((t1 - start_s) * self.rps - 1e-9)
                times = start_s + np.arange(k, n_end) / self.rps
                k = max(k, n_end)
            n = len(times)
            if self.fixed_tokens is not None:
                prompt, output = [self.fixed_tokens[0]] * n, [self.fixed_tokens[1]] * n
            else:
                prompt, output = self.tokens.sample(rng, n)
            yield (times - start_s).tolist(), prompt, output
            t0 = t1


@dataclass
class TraceReplay:
    """A request trace whose first row falls at epoch ``origin_s``, time-compressed by ``rate_scale``; ``loop``
    repeats it end to end. A window [start, end) gets the rows that fall inside it, wherever it starts: the days
    before a measured window are the trace's earlier rows (history), never the measured rows again."""

    trace: RequestTrace
    rate_scale: float = 1.0
    loop: bool = False
    origin_s: float = 0.0
    name: str = "trace"

    @property
    def span_s(self) -> float:
        """One pass, in run seconds: the last row's offset plus one mean gap, compressed."""
        tr, n = self.trace, len(self.trace)
        gap = float(tr.offsets_s[-1]) / (n - 1) if n > 1 else 1.0
        return (float(tr.offsets_s[-1]) + gap) / self.rate_scale

    def trace_offset_s(self, epoch_s: float) -> float:
        """Where in the file (seconds after its first row) epoch ``epoch_s`` of the run falls."""
        return ((epoch_s - self.origin_s) % self.span_s if self.loop else epoch_s - self.origin_s) * self.rate_scale

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        tr, period = self.trace, self.span_s
        offsets = tr.offsets_s / self.rate_scale
        k = max(0, math.floor((start_s - self.origin_s) / period)) if self.loop else 0
        while (base := self.origin_s + k * period) < end_s:
            lo = int(np.searchsorted(offsets, start_s - base, side="left"))
            hi = int(np.searchsorted(offsets, end_s - base, side="left"))
            for a in range(lo, hi, 50_000):
                b = min(a + 50_000, hi)
                yield (
                    (base + offsets[a:b] - start_s).tolist(),
                    tr.prompt_tokens[a:b].tolist(),
                    tr.output_tokens[a:b].tolist(),
                )
            if not self.loop:
                return
            k += 1


@dataclass
class RateSeries:
    """Poisson arrivals at a rate following a series (piecewise constant) × ``rate_scale``, its first piece at
    epoch ``origin_s``; ``loop`` repeats the series end to end. Like ``TraceReplay``, a window gets the part of
    the series that falls inside it."""

    trace: RateTrace
    rate_scale: float = 1.0
    loop: bool = False
    tokens: TokenModel = field(default_factory=TokenModel)
    origin_s: float = 0.0
    name: str = "rate-trace"

    @property
    def span_s(self) -> float:
        return self.trace.duration_s

    def trace_offset_s(self, epoch_s: float) -> float:
        return (epoch_s - self.origin_s) % self.span_s if self.loop else epoch_s - self.origin_s

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        tr, period = self.trace, self.span_s
        group = max(1, round(HOUR_S / float(np.median(tr.widths_s))))  # about an hour of pieces per chunk
        k = max(0, math.floor((start_s - self.origin_s) / period)) if self.loop else 0
        while (base := self.origin_s + k * period) < end_s:
            piece_start = base + tr.starts_s
            piece_end = piece_start + tr.widths_s
            lo = int(np.searchsorted(piece_end, start_s, side="right"))
            hi = int(np.searchsorted(piece_start, end_s, side="left"))
            for a in range(lo, hi, group):
                b = min(a + group, hi)
                s = np.maximum(piece_start[a:b], start_s)
                w = np.maximum(np.minimum(piece_end[a:b], end_s) - s, 0.0)
                times = poisson_pieces(rng, s, w, tr.rates_per_s[a:b] * self.rate_scale)
                prompt, output = self.tokens.sample(rng, len(times))
                yield (times - start_s).tolist(), prompt, output
            if not self.loop:
                return
            k += 1


PROFILES = ("business-hours", "constant")


def make_profile(name: str, *, tz: str, rate_scale: float = 1.0, rps: float | None = None) -> Traffic:
    if rate_scale <= 0 or not math.isfinite(rate_scale):
        raise TrafficError(f"--rate-scale = {rate_scale}: must be a finite number > 0")
    if name == "business-hours":
        return BusinessHours(tz=tz, scale=rate_scale)
    if name == "constant":
        if rps is None or rps < 0 or not math.isfinite(rps):
            raise TrafficError(f"--rps = {rps}: the constant profile needs a finite rate >= 0")
        return ConstantRate(rps * rate_scale)
    raise TrafficError(f"--traffic = {name!r}: unknown profile (known: {', '.join(PROFILES)})")
