"""From user inputs (config file, traffic choice, dates) to a ready ``Simulation``; errors name the field.

A trace is history, not a loop by default: its first row falls ``warmup_days`` before ``--start`` (0 for
``simulate``; ``plan compare --warmup-days 7`` learns the trace's first 7 days and measures from day 7). A trace
shorter than warm-up + measured days is an error unless ``--loop`` repeats it, and then the measured days repeat
learned ones (``window_json`` says so).

Usage::

    sim = build_simulation(ScenarioInput(config_path=Path("examples/seed-sagemaker.yaml"), days=1, seed=1))
    sim.run()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ebbtide.config import Config, ConfigError, PoolSpec, default_config, load_config
from ebbtide.sim.run import RunOptions, Simulation
from ebbtide.sim.traces import load_rate_trace, load_request_trace, trace_time
from ebbtide.sim.traffic import RateSeries, TraceReplay, Traffic, make_profile
from ebbtide.sim.unforecast import Unforecast, UnforecastTraffic

__all__ = [
    "DAY_S",
    "DEFAULT_START",
    "InputError",
    "ScenarioInput",
    "TrafficSource",
    "build_simulation",
    "pool_tz",
    "window_json",
]

DEFAULT_START = date(2028, 2, 23)  # a Wednesday: seed 000's article date
DAY_S = 86_400.0


class InputError(ValueError):
    """Bad user input, phrased as "`field` = value: must be …"."""


@dataclass(frozen=True, slots=True)
class TrafficSource:
    """Where arrivals come from: the flags ``simulate``, ``plan compare`` and ``plan tune`` share (sim/options.py)."""

    pool: str | None = None
    traffic: str | None = None
    trace: Path | None = None
    rate_trace: Path | None = None
    rate_scale: float = 1.0
    rps: float | None = None
    loop: bool = False
    time_column: str | None = None
    rate_column: str | None = None
    skip_bad_rows: bool = False
    start: str | None = None
    tz: str | None = None


@dataclass(frozen=True, slots=True)
class ScenarioInput(TrafficSource):
    config_path: Path | None = None
    days: float = 1.0
    seed: int = 0
    warmup_days: float = 0.0  # days learned before --start: a trace's first row falls there
    unforecast: Unforecast | None = None  # traffic the forecast did not see (sim/unforecast.py)


def pool_tz(pool: PoolSpec) -> str:
    """``sim.tz``, else the first schedule's time zone (so "a Wednesday" is the schedule's), else UTC."""
    if pool.sim is not None and pool.sim.tz is not None:
        return pool.sim.tz
    for spec in pool.scaling.policies:
        tz = getattr(spec, "tz", None)
        if isinstance(tz, str):
            return tz
    return "UTC"


def _config(inp: ScenarioInput) -> tuple[Config, PoolSpec]:
    cfg = default_config() if inp.config_path is None else load_config(inp.config_path)
    if inp.pool is None:
        return cfg, cfg.pools[0]
    try:
        return cfg, cfg.pool(inp.pool)
    except KeyError:
        names = ", ".join(p.name for p in cfg.pools)
        raise InputError(f"--pool = {inp.pool!r}: no such pool (pools: {names})") from None


def _traffic(inp: ScenarioInput, tz: str, start_epoch_s: float) -> Traffic:
    chosen = [
        n
        for n, v in (("--traffic", inp.traffic), ("--trace", inp.trace), ("--rate-trace", inp.rate_trace))
        if v is not None
    ]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)}: choose one traffic source")
    if not math.isfinite(inp.rate_scale) or inp.rate_scale <= 0:
        raise InputError(f"--rate-scale = {inp.rate_scale}: must be a finite number > 0")
    origin_s = start_epoch_s - inp.warmup_days * DAY_S
    if inp.trace is not None:
        trace = load_request_trace(inp.trace, skip_bad_rows=inp.skip_bad_rows)
        replay = TraceReplay(trace, inp.rate_scale, inp.loop, origin_s)
        _check_covers(replay, inp, f"--trace {inp.trace}")
        return replay
    if inp.rate_trace is not None:
        series = load_rate_trace(
            inp.rate_trace,
            time_column=inp.time_column,
            rate_column=inp.rate_column,
            skip_bad_rows=inp.skip_bad_rows,
        )
        rates = RateSeries(series, inp.rate_scale, inp.loop, origin_s=origin_s)
        _check_covers(rates, inp, f"--rate-trace {inp.rate_trace}")
        return rates
    return make_profile(inp.traffic or "business-hours", tz=tz, rate_scale=inp.rate_scale, rps=inp.rps)


def _check_covers(traffic: TraceReplay | RateSeries, inp: ScenarioInput, source: str) -> None:
    ahead = max(0.0, inp.unforecast.shift_hours / 24) if inp.unforecast is not None else 0.0  # shifted reads
    have, need = traffic.span_s / DAY_S, inp.warmup_days + inp.days + ahead
    if traffic.loop or have >= need - 1e-9:
        return
    asked = f"--days {inp.days:g}"
    if inp.warmup_days:
        asked = f"--warmup-days {inp.warmup_days:g} + {asked}"
    if ahead:
        asked += f" + --shift {24 * ahead:g} h"
    scaled = f" at --rate-scale {inp.rate_scale:g}" if isinstance(traffic, TraceReplay) else ""
    raise InputError(
        f"{source} covers {have:.6g} days{scaled}, shorter than the {need:g} days asked for ({asked}): give "
        "--loop to repeat it (measured days then repeat learned ones), or ask for fewer days"
    )


def window_json(
    traffic: Traffic,
    start_epoch_s: float,
    duration_s: float,
    warmup_days: float,
    tz: str,
    arrivals_s: Sequence[float],
) -> dict[str, object]:
    """The learned and measured windows in calendar time and, for a trace, in the file's own time; with
    ``arrivals_s`` (the measured arrivals, seconds after the start) the first and last arrival too."""
    zone = ZoneInfo(tz)

    def stamp(epoch_s: float) -> str:
        return datetime.fromtimestamp(epoch_s, zone).isoformat(timespec="seconds")

    end_s, learned_s = start_epoch_s + duration_s, start_epoch_s - warmup_days * DAY_S
    out: dict[str, object] = {
        "learned": [stamp(learned_s), stamp(start_epoch_s)] if warmup_days > 0 else None,
        "measured": [stamp(start_epoch_s), stamp(end_s)],
    }
    if isinstance(traffic, UnforecastTraffic):
        out["unforecast"] = traffic.spec.label()
        traffic = traffic.inner
    if not isinstance(traffic, TraceReplay | RateSeries):
        return out
    tr = traffic.trace

    def at(epoch_s: float, end: bool = False) -> str:
        """The file's time at ``epoch_s``; ``end``: an exclusive end, so a full pass ends at the file's end."""
        offset = traffic.trace_offset_s(epoch_s - 1e-6 if end else epoch_s) + (1e-6 if end else 0.0)
        return trace_time(tr.t0_s, tr.dated, offset)

    out["trace"] = {
        "path": tr.path,
        "learned": [at(learned_s), at(start_epoch_s, end=True)] if warmup_days > 0 else None,
        "measured": [at(start_epoch_s), at(end_s, end=True)],
        "first_arrival": at(start_epoch_s + arrivals_s[0]) if len(arrivals_s) else None,
        "last_arrival": at(start_epoch_s + arrivals_s[-1]) if len(arrivals_s) else None,
        "loops": traffic.loop,
        "repeats_learned": bool(
            traffic.loop and warmup_days > 0 and (warmup_days * DAY_S + duration_s) > traffic.span_s + 1e-6
        ),
    }
    return out


def _start_epoch(inp: ScenarioInput, tz: str) -> float:
    text = inp.start or DEFAULT_START.isoformat()
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--start = {text!r}: must be a date like 2028-02-23 (optionally with a time)") from None
    return day.replace(tzinfo=ZoneInfo(tz)).timestamp() if day.tzinfo is None else day.timestamp()


def build_simulation(inp: ScenarioInput, progress: Callable[[float], None] | None = None) -> tuple[Simulation, str]:
    """Returns the simulation (not yet run) and the time zone used for dates and plots.

    Raises ``InputError``, ``ConfigError``, ``TrafficError`` or ``TraceError`` (all but ``ConfigError`` are
    ``ValueError``) with messages that name the field, flag or file line.
    """
    if not math.isfinite(inp.days) or inp.days <= 0:
        raise InputError(f"--days = {inp.days}: must be > 0")
    cfg, pool = _config(inp)
    tz = inp.tz or pool_tz(pool)
    try:
        ZoneInfo(tz)
    except Exception:
        raise InputError(f"--tz = {tz!r}: not an IANA time zone") from None
    if not math.isfinite(inp.warmup_days) or inp.warmup_days < 0:
        raise InputError(f"--warmup-days = {inp.warmup_days}: must be >= 0")
    start_s = _start_epoch(inp, tz)
    traffic = _traffic(inp, tz, start_s)
    if inp.unforecast is not None and inp.unforecast.active:
        traffic = UnforecastTraffic(traffic, inp.unforecast, start_s, start_s - inp.warmup_days * DAY_S, tz)
    base_dir = inp.config_path.parent if inp.config_path is not None else None
    options = RunOptions(start_s, inp.days * DAY_S, inp.seed, base_dir, tz)
    try:
        sim = Simulation(cfg, pool, traffic, options, progress=progress)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return sim, tz
