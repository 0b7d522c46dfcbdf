"""From user inputs (config file, traffic choice, dates) to a ready ``Simulation``; errors name the field.

Usage::

    sim = build_simulation(ScenarioInput(config_path=Path("examples/seed-sagemaker.yaml"), days=1, seed=1))
    sim.run()
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ebbtide.config import Config, ConfigError, PoolSpec, default_config, load_config
from ebbtide.sim.run import RunOptions, Simulation
from ebbtide.sim.traces import load_rate_trace, load_request_trace
from ebbtide.sim.traffic import RateSeries, TraceReplay, Traffic, make_profile

__all__ = ["DEFAULT_START", "InputError", "ScenarioInput", "build_simulation", "pool_tz"]

DEFAULT_START = date(2028, 2, 23)  # a Wednesday: seed 000's article date


class InputError(ValueError):
    """Bad user input, phrased as "`field` = value: must be …"."""


@dataclass(frozen=True, slots=True)
class ScenarioInput:
    config_path: Path | None = None
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
    days: float = 1.0
    seed: int = 0


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


def _traffic(inp: ScenarioInput, tz: str) -> Traffic:
    chosen = [
        n
        for n, v in (("--traffic", inp.traffic), ("--trace", inp.trace), ("--rate-trace", inp.rate_trace))
        if v is not None
    ]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)}: choose one traffic source")
    if not math.isfinite(inp.rate_scale) or inp.rate_scale <= 0:
        raise InputError(f"--rate-scale = {inp.rate_scale}: must be a finite number > 0")
    if inp.trace is not None:
        trace = load_request_trace(inp.trace, skip_bad_rows=inp.skip_bad_rows)
        return TraceReplay(trace, inp.rate_scale, inp.loop)
    if inp.rate_trace is not None:
        series = load_rate_trace(
            inp.rate_trace,
            time_column=inp.time_column,
            rate_column=inp.rate_column,
            skip_bad_rows=inp.skip_bad_rows,
        )
        return RateSeries(series, inp.rate_scale, loop=True)
    return make_profile(inp.traffic or "business-hours", tz=tz, rate_scale=inp.rate_scale, rps=inp.rps)


def _start_epoch(inp: ScenarioInput, tz: str) -> float:
    text = inp.start or DEFAULT_START.isoformat()
    try:
        day = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--start = {text!r}: must be a date like 2028-02-23 (optionally with a time)"
        ) from None
    return day.replace(tzinfo=ZoneInfo(tz)).timestamp() if day.tzinfo is None else day.timestamp()


def build_simulation(
    inp: ScenarioInput, progress: Callable[[float], None] | None = None
) -> tuple[Simulation, str]:
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
    traffic = _traffic(inp, tz)
    base_dir = inp.config_path.parent if inp.config_path is not None else None
    options = RunOptions(_start_epoch(inp, tz), inp.days * 86400.0, inp.seed, base_dir, tz)
    try:
        sim = Simulation(cfg, pool, traffic, options, progress=progress)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return sim, tz
