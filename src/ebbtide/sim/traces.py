"""CSV inputs of the twin: request traces (Azure format) and rate series (e.g. ServeGen), with errors naming
file and line.

``load_request_trace(path)`` → offsets from the first request plus token counts; ``load_rate_trace(path)`` →
piecewise-constant rate series. ``skip_bad_rows=True`` counts bad rows instead of failing. Both keep the file's
first timestamp (``t0_s``, and whether it was a date) so a run can name the part of the trace it replayed in the
file's own terms (``trace_time``)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

__all__ = ["RateTrace", "RequestTrace", "TraceError", "load_rate_trace", "load_request_trace", "trace_time"]

TIME_COLUMNS = ("timestamp", "time", "time_s", "arrival_s", "window_start_s", "start_s", "t")
PROMPT_COLUMNS = ("contexttokens", "context_tokens", "prompt_tokens", "input_tokens")
OUTPUT_COLUMNS = ("generatedtokens", "generated_tokens", "output_tokens", "completion_tokens")
RATE_COLUMNS = ("total_rate_req_per_s", "rate_req_per_s", "rate", "rps", "requests_per_s", "req_per_s")

Parsed = TypeVar("Parsed")


class TraceError(ValueError):
    """A trace problem phrased for the user: ``FILE:LINE: what is wrong``."""


@dataclass(frozen=True, slots=True)
class RequestTrace:
    path: str
    offsets_s: np.ndarray  # seconds after the first request, sorted
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    skipped_rows: int = 0
    t0_s: float = 0.0  # the file's first time value (seconds; since 1970 when it was a date)
    dated: bool = False  # the time column held dates, not seconds

    def __len__(self) -> int:
        return len(self.offsets_s)


@dataclass(frozen=True, slots=True)
class RateTrace:
    path: str
    starts_s: np.ndarray  # piece starts relative to the first, sorted
    widths_s: np.ndarray
    rates_per_s: np.ndarray
    skipped_rows: int = 0
    t0_s: float = 0.0
    dated: bool = False

    @property
    def duration_s(self) -> float:
        return float(self.starts_s[-1] + self.widths_s[-1])


def _pick(header: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path, what: str) -> int:
    names = [h.strip().lower() for h in header]
    if wanted is not None:
        if wanted.lower() not in names:
            raise TraceError(f"{path}:1: no column {wanted!r} (columns: {', '.join(header)})")
        return names.index(wanted.lower())
    for c in candidates:
        if c in names:
            return names.index(c)
    raise TraceError(f"{path}:1: cannot find the {what} column among {header}; name it with a flag")


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text)
    return stamp.timestamp() if stamp.tzinfo else (stamp - datetime(1970, 1, 1)).total_seconds()


def _is_date(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return True
    return False


def _dated(rows: list[tuple[int, list[str]]], column: int) -> bool:
    """Whether the time column holds dates, judged on the first row that has the column."""
    return next((_is_date(row[column]) for _, row in rows if len(row) > column), False)


def trace_time(t0_s: float, dated: bool, offset_s: float) -> str:
    """A position in a trace as its file would write it: a date (UTC if the file had no zone) or seconds."""
    value = t0_s + offset_s
    if dated:
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    return f"{value:.3f}".rstrip("0").rstrip(".") + " s"


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise TraceError(f"{path}:1: empty file")
            return header, [(reader.line_num, row) for row in reader if row]
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _parse_rows(
    path: Path,
    header: list[str],
    rows: list[tuple[int, list[str]]],
    parse: Callable[[list[str], list[Parsed]], Parsed],
    skip_bad_rows: bool,
) -> tuple[list[Parsed], int]:
    """Every row through ``parse`` (given the rows accepted so far; ValueError refuses the row), and how many
    bad rows were skipped. A bad row is a TraceError naming file and line unless ``skip_bad_rows``."""
    parsed: list[Parsed] = []
    skipped = 0
    for line, row in rows:
        try:
            if len(row) != len(header):
                raise ValueError(f"{len(row)} fields, expected {len(header)}")
            parsed.append(parse(row, parsed))
        except ValueError as exc:
            if not skip_bad_rows:
                raise TraceError(f"{path}:{line}: bad row {','.join(row)!r}: {exc}") from None
            skipped += 1
    if not parsed:
        raise TraceError(f"{path}: no usable rows")
    return parsed, skipped


def load_request_trace(path: str | Path, *, skip_bad_rows: bool = False) -> RequestTrace:
    """Azure LLM inference trace format: ``TIMESTAMP,ContextTokens,GeneratedTokens`` (other names auto-
    detected)."""
    path = Path(path)
    header, rows = _rows(path)
    ti = _pick(header, None, TIME_COLUMNS, path, "time")
    pi = _pick(header, None, PROMPT_COLUMNS, path, "prompt tokens")
    oi = _pick(header, None, OUTPUT_COLUMNS, path, "output tokens")

    def parse(row: list[str], _accepted: list[tuple[float, int, int]]) -> tuple[float, int, int]:
        t, p, o = _parse_time(row[ti]), int(row[pi]), int(row[oi])
        if p < 0 or o < 0 or not math.isfinite(t):
            raise ValueError("token counts must be >= 0 and the time finite")
        return t, p, o

    parsed, skipped = _parse_rows(path, header, rows, parse, skip_bad_rows)
    times, prompts, outputs = zip(*parsed, strict=True)
    t_arr = np.asarray(times, dtype=np.float64)
    order = np.argsort(t_arr, kind="stable")
    t0 = float(t_arr[order[0]])
    return RequestTrace(
        str(path),
        t_arr[order] - t0,
        np.asarray(prompts, dtype=np.int64)[order],
        np.asarray(outputs, dtype=np.int64)[order],
        skipped,
        t0,
        _dated(rows, ti),
    )


def load_rate_trace(
    path: str | Path,
    *,
    time_column: str | None = None,
    rate_column: str | None = None,
    skip_bad_rows: bool = False,
) -> RateTrace:
    """A rate series, piecewise constant from one row's time to the next (ServeGen: window_start_s,
    total_rate…)."""
    path = Path(path)
    header, rows = _rows(path)
    ti = _pick(header, time_column, TIME_COLUMNS, path, "time")
    ri = _pick(header, rate_column, RATE_COLUMNS, path, "rate")

    def parse(row: list[str], accepted: list[tuple[float, float]]) -> tuple[float, float]:
        t, r = _parse_time(row[ti]), float(row[ri])
        if not (math.isfinite(r) and r >= 0 and math.isfinite(t)):
            raise ValueError("rate must be a finite number >= 0")
        if accepted and t <= accepted[-1][0]:
            raise ValueError(f"time {t:g} is not after the previous row's {accepted[-1][0]:g}")
        return t, r

    parsed, skipped = _parse_rows(path, header, rows, parse, skip_bad_rows)
    starts, rates = zip(*parsed, strict=True)
    s = np.asarray(starts, dtype=np.float64) - starts[0]
    gaps = np.diff(s)
    last = float(np.median(gaps)) if len(gaps) else 60.0
    widths = np.append(gaps, last)
    dated = _dated(rows, ti)
    return RateTrace(str(path), s, widths, np.asarray(rates, dtype=np.float64), skipped, float(starts[0]), dated)
