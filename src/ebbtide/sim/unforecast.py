"""Traffic the forecast did not see: named changes laid over any profile or trace, for "what if" runs.

- ``holiday``: a weekday (local date) gets the traffic of the Sunday before it, same time of day.
- ``growth``: the rate grows ``pct`` % a week, compounding from the first learned day (history shows the growth
  too; a forecast made of past weeks is always behind it).
- ``shift``: from the onset on, traffic arrives ``hours`` earlier than usual (positive) or later (negative): the
  users' clocks moved (a time-zone or daylight-saving change the pool's zone did not make).
- ``burst``: ``factor`` × the rate for ``minutes`` from the onset.
- ``mix``: from the onset on, every request's output is ``factor`` × longer.

Everything except growth starts at or after the measured start, so the learning policies never saw it. Rates
are changed the way a Poisson process allows exactly: for a multiplier m(t) up to M, M independent draws of the
source over the window are merged and each arrival kept with probability m(t) / M (a request trace gives the
same rows each draw, so its copies are spread between a row and the next). Times are moved by asking the source
for another window (the Sunday before, an hour later) and shifting what it returns.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ebbtide.sim.traffic import Arrivals, TraceReplay, Traffic

__all__ = ["Burst", "Unforecast", "UnforecastError", "UnforecastTraffic", "parse_at", "unforecast_from_flags"]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
MAX_OUTPUT_TOKENS = 16_384


class UnforecastError(ValueError):
    """A bad scenario flag, phrased for the user."""


@dataclass(frozen=True, slots=True)
class Burst:
    factor: float
    minutes: float
    at: str  # HH:MM on the first measured day, or a local date-time


@dataclass(frozen=True, slots=True)
class Unforecast:
    holiday: str | None = None  # YYYY-MM-DD, a weekday
    growth_pct: float = 0.0  # per week
    shift_hours: float = 0.0
    shift_at: str | None = None  # onset; default the measured start
    burst: Burst | None = None
    mix_output: float = 1.0
    mix_at: str | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.holiday or self.growth_pct or self.shift_hours or self.burst or self.mix_output != 1.0
        )

    def label(self) -> str:
        parts = []
        if self.holiday:
            parts.append(f"holiday {self.holiday}")
        if self.growth_pct:
            parts.append(f"growth {self.growth_pct:+g}%/week")
        if self.shift_hours:
            parts.append(f"shift {self.shift_hours:+g} h" + (f" @{self.shift_at}" if self.shift_at else ""))
        if self.burst:
            parts.append(f"burst {self.burst.factor:g}x {self.burst.minutes:g} min @{self.burst.at}")
        if self.mix_output != 1.0:
            parts.append(f"outputs x{self.mix_output:g}" + (f" @{self.mix_at}" if self.mix_at else ""))
        return ", ".join(parts)


def _number_at(flag: str, text: str) -> tuple[float, str | None]:
    """``X`` or ``X@TIME``."""
    value, _, at = text.partition("@")
    try:
        number = float(value)
    except ValueError:
        raise UnforecastError(f"{flag} = {text!r}: must be a number, optionally @HH:MM") from None
    if not math.isfinite(number):
        raise UnforecastError(f"{flag} = {text!r}: must be finite")
    return number, (at.strip() or None)


def unforecast_from_flags(
    holiday: str | None, growth: float | None, shift: str | None, burst: str | None, mix_output: str | None
) -> Unforecast | None:
    """The scenario flags as one ``Unforecast`` (None when none is given); errors name the flag."""
    if not any(v is not None for v in (holiday, growth, shift, burst, mix_output)):
        return None
    shift_hours, shift_at = _number_at("--shift", shift) if shift is not None else (0.0, None)
    if abs(shift_hours) > 24:
        raise UnforecastError(f"--shift = {shift!r}: at most 24 hours either way")
    mix, mix_at = _number_at("--mix-output", mix_output) if mix_output is not None else (1.0, None)
    parsed = None
    if burst is not None:
        m = re.fullmatch(r"\s*([0-9.]+)x([0-9.]+)m(?:@(.+))?\s*", burst)
        if m is None:
            raise UnforecastError(f"--burst = {burst!r}: use FACTORxMINUTESm@TIME, e.g. 3x30m@12:00")
        parsed = Burst(float(m.group(1)), float(m.group(2)), (m.group(3) or "12:00").strip())
    return Unforecast(holiday, growth or 0.0, shift_hours, shift_at, parsed, mix, mix_at)


def parse_at(text: str, first_day_epoch_s: float, tz: str) -> float:
    """``HH:MM`` on the first measured day, or a local ``YYYY-MM-DD[THH:MM]``, as an epoch."""
    zone = ZoneInfo(tz)
    if re.fullmatch(r"\d{1,2}:\d{2}", text.strip()):
        hour, minute = (int(x) for x in text.split(":"))
        day = datetime.fromtimestamp(first_day_epoch_s, zone)
        return day.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UnforecastError(f"time {text!r}: use HH:MM (on the first measured day) or 2028-02-24T12:00") from None
    return stamp.replace(tzinfo=zone).timestamp() if stamp.tzinfo is None else stamp.timestamp()


@dataclass(frozen=True, slots=True)
class _Segment:
    start_s: float
    end_s: float
    source_offset_s: float  # the source is asked for [start, end) + this


@dataclass
class UnforecastTraffic:
    """``inner`` with ``spec`` laid over it; ``measured_start_s`` is when the unforecast part may begin and
    ``learned_start_s`` when growth starts compounding."""

    inner: Traffic
    spec: Unforecast
    measured_start_s: float
    learned_start_s: float
    tz: str
    name: str = field(init=False)
    _holiday: tuple[float, float, float] | None = field(init=False, default=None)
    _shift_from_s: float = field(init=False, default=0.0)
    _burst: tuple[float, float] | None = field(init=False, default=None)
    _mix_from_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        spec, zone = self.spec, ZoneInfo(self.tz)
        self.name = f"{self.inner.name} + {spec.label()}"
        if spec.holiday:
            self._holiday = self._holiday_window(spec.holiday, zone)
        self._shift_from_s = self._onset(spec.shift_at)
        if spec.burst is not None:
            if spec.burst.factor < 0 or spec.burst.minutes <= 0:
                raise UnforecastError(f"--burst {spec.burst.factor:g}x{spec.burst.minutes:g}m: need k >= 0, m > 0")
            at = self._onset(spec.burst.at)
            self._burst = (at, at + 60.0 * spec.burst.minutes)
        self._mix_from_s = self._onset(spec.mix_at)
        if spec.mix_output <= 0:
            raise UnforecastError(f"--mix-output = {spec.mix_output:g}: must be > 0")
        if spec.growth_pct <= -100:
            raise UnforecastError(f"--growth = {spec.growth_pct:g}: must be > -100 (% a week)")

    def _onset(self, text: str | None) -> float:
        if text is None:
            return self.measured_start_s
        at = parse_at(text, self.measured_start_s, self.tz)
        if at < self.measured_start_s:
            raise UnforecastError(f"onset {text!r} is before the measured start: the forecast would have seen it")
        return at

    def _holiday_window(self, text: str, zone: ZoneInfo) -> tuple[float, float, float]:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise UnforecastError(f"--holiday = {text!r}: must be a date like 2028-02-24") from None
        if day.weekday() >= 5:
            raise UnforecastError(f"--holiday = {text}: a {day:%A}, already weekend traffic; pick a weekday")
        start = datetime.combine(day, datetime.min.time(), zone).timestamp()
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).timestamp()
        if start < self.measured_start_s:
            raise UnforecastError(f"--holiday = {text}: before the measured start, so learned, not unforecast")
        sunday = datetime.combine(day - timedelta(days=day.weekday() + 1), datetime.min.time(), zone).timestamp()
        return start, end, sunday - start

    # -- rates ---------------------------------------------------------------------------------------------

    def multiplier(self, epoch_s: np.ndarray) -> np.ndarray:
        m = np.ones(len(epoch_s))
        if self.spec.growth_pct:
            weeks = (epoch_s - self.learned_start_s) / WEEK_S
            m *= (1 + self.spec.growth_pct / 100) ** np.maximum(weeks, 0.0)
        if self._burst is not None:
            inside = (epoch_s >= self._burst[0]) & (epoch_s < self._burst[1])
            m[inside] *= self.spec.burst.factor if self.spec.burst else 1.0
        return m

    def _peak_multiplier(self, start_s: float, end_s: float) -> float:
        """The largest multiplier in [start, end): growth is monotone, a burst starts at its first second."""
        probe = [start_s, end_s - 1e-6]
        if self._burst is not None and start_s <= self._burst[0] < end_s:
            probe.append(self._burst[0])
        return float(self.multiplier(np.asarray(probe)).max())

    # -- windows -------------------------------------------------------------------------------------------

    def _segments(self, start_s: float, end_s: float) -> list[_Segment]:
        cuts = {start_s, end_s}
        if self.spec.shift_hours:
            cuts.add(self._shift_from_s)
        if self._holiday is not None:
            cuts |= {self._holiday[0], self._holiday[1]}
        if self._burst is not None:
            cuts |= set(self._burst)
        edges = sorted(c for c in cuts if start_s <= c <= end_s)
        out = []
        for a, b in itertools.pairwise(edges):
            if b <= a:
                continue
            offset = 3600.0 * self.spec.shift_hours if self.spec.shift_hours and a >= self._shift_from_s else 0.0
            if self._holiday is not None and self._holiday[0] <= a < self._holiday[1]:
                offset += self._holiday[2]
            out.append(_Segment(a, b, offset))
        return out

    def chunks(self, start_s: float, end_s: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        for seg in self._segments(start_s, end_s):
            for times, prompt, output in self._segment(seg, rng):
                t = np.asarray(times) + (seg.start_s - start_s)
                yield t.tolist(), prompt, self._mix(seg.start_s + np.asarray(times), output)

    def _segment(self, seg: _Segment, rng: np.random.Generator) -> Iterator[Arrivals]:
        """Arrivals of the segment, seconds after its start."""
        a, b = seg.start_s + seg.source_offset_s, seg.end_s + seg.source_offset_s
        peak = self._peak_multiplier(seg.start_s, seg.end_s)
        if peak == 1.0 and not self.spec.growth_pct:
            yield from self.inner.chunks(a, b, rng)
            return
        copies = max(1, math.ceil(peak - 1e-9))
        children = [np.random.default_rng(int(rng.integers(2**62))) for _ in range(copies - 1)]
        streams = [self.inner.chunks(a, b, rng), *(self._copy(a, b, r) for r in children)]
        for times, prompt, output in _merge(streams):
            keep = rng.random(len(times)) < self.multiplier(seg.start_s + times) / copies
            yield times[keep].tolist(), prompt[keep].tolist(), output[keep].tolist()

    def _copy(self, a: float, b: float, rng: np.random.Generator) -> Iterator[Arrivals]:
        """An independent draw of the source; a trace's rows are spread between each row and the next."""
        for times, prompt, output in self.inner.chunks(a, b, rng):
            if isinstance(self.inner, TraceReplay) and len(times) > 1:
                t = np.asarray(times)
                gaps = np.append(np.diff(t), 0.0)
                times = (t + rng.random(len(t)) * gaps).tolist()
            yield times, prompt, output

    def _mix(self, epoch_s: np.ndarray, output: list[int]) -> list[int]:
        if self.spec.mix_output == 1.0 or not len(output) or epoch_s[-1] < self._mix_from_s:
            return output
        out = np.asarray(output, dtype=np.float64)
        later = epoch_s >= self._mix_from_s
        out[later] = np.clip(np.rint(out[later] * self.spec.mix_output), 1, MAX_OUTPUT_TOKENS)
        return out.astype(np.int64).tolist()  # type: ignore[no-any-return]


def _merge(streams: list[Iterator[Arrivals]]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Merge time-ordered chunk streams into time-ordered chunks: emit what is certain (every stream that is
    still open has buffered past it), then refill."""
    bufs: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(streams)
    open_ = [True] * len(streams)
    while True:
        for i, stream in enumerate(streams):
            while open_[i] and (bufs[i] is None or len(bufs[i][0]) == 0):  # type: ignore[index]
                nxt = next(stream, None)
                if nxt is None:
                    open_[i] = False
                else:
                    bufs[i] = (np.asarray(nxt[0], dtype=np.float64), np.asarray(nxt[1]), np.asarray(nxt[2]))
        live = [b for b in bufs if b is not None and len(b[0])]
        if not live:
            return
        horizon = min(
            (float(b[0][-1]) for i, b in enumerate(bufs) if open_[i] and b is not None and len(b[0])),
            default=math.inf,
        )
        parts = []
        for i, b in enumerate(bufs):
            if b is None or not len(b[0]):
                continue
            n = int(np.searchsorted(b[0], horizon, side="right"))
            parts.append((b[0][:n], b[1][:n], b[2][:n]))
            bufs[i] = (b[0][n:], b[1][n:], b[2][n:])
        times = np.concatenate([p[0] for p in parts])
        order = np.argsort(times, kind="stable")
        yield times[order], np.concatenate([p[1] for p in parts])[order], np.concatenate([p[2] for p in parts])[order]
