"""The traffic options every twin command takes (``simulate``, ``plan compare``, ``plan tune``): one definition,
so a flag means the same thing, with the same default and help, wherever it appears.

A command asks for them with one parameter and the decorator::

    @traffic_options
    def simulate(config: Path | None = ..., days: float = ..., traffic_opts: TrafficOptions = NO_OPTIONS) -> None:
        inp = traffic_opts.scenario_input(config, days=days, seed=seed)

typer sees the shared flags in the signature in place of ``traffic_opts``; the wrapper gathers them into a
``TrafficOptions``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import typer

from ebbtide.sim.scenario import ScenarioInput, TrafficSource
from ebbtide.sim.unforecast import unforecast_from_flags

__all__ = ["NO_OPTIONS", "TrafficOptions", "traffic_options"]

Command = TypeVar("Command", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class TrafficOptions(TrafficSource):
    """The shared flags: where arrivals come from, and the unforecast scenarios on top."""

    holiday: str | None = None
    growth: float | None = None
    shift: str | None = None
    burst: str | None = None
    mix_output: str | None = None

    def scenario_input(
        self, config_path: Path | None, *, days: float, seed: int, warmup_days: float = 0.0
    ) -> ScenarioInput:
        """Raises ``UnforecastError`` (a ValueError naming the flag) for a bad scenario flag."""
        shared = {f.name: getattr(self, f.name) for f in fields(TrafficSource)}
        unforecast = unforecast_from_flags(self.holiday, self.growth, self.shift, self.burst, self.mix_output)
        return ScenarioInput(
            config_path=config_path, days=days, seed=seed, warmup_days=warmup_days, unforecast=unforecast, **shared
        )


NO_OPTIONS = TrafficOptions()

# (field, type, typer option): the order is the order in --help.
_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("pool", str | None, typer.Option(None, "--pool", help="Pool to run (default: the first).")),
    (
        "traffic",
        str | None,
        typer.Option(None, "--traffic", help="Named profile: business-hours (default) or constant (--rps)."),
    ),
    (
        "trace",
        Path | None,
        typer.Option(None, "--trace", help="Replay a request trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens)."),
    ),
    (
        "rate_trace",
        Path | None,
        typer.Option(None, "--rate-trace", help="Poisson arrivals following a rate series CSV (e.g. ServeGen)."),
    ),
    (
        "rate_scale",
        float,
        typer.Option(1.0, "--rate-scale", help="Multiply rates (a --trace is time-compressed by this factor)."),
    ),
    ("rps", float | None, typer.Option(None, "--rps", help="Rate of the constant profile, requests/s.")),
    (
        "loop",
        bool,
        typer.Option(
            False, "--loop", help="Repeat a --trace or --rate-trace end to end (else one shorter than the run fails)."
        ),
    ),
    ("time_column", str | None, typer.Option(None, "--time-column", help="--rate-trace time column (auto).")),
    ("rate_column", str | None, typer.Option(None, "--rate-column", help="--rate-trace rate column (auto).")),
    (
        "skip_bad_rows",
        bool,
        typer.Option(False, "--skip-bad-rows", help="Skip malformed trace rows (counted) instead of failing."),
    ),
    (
        "start",
        str | None,
        typer.Option(None, "--start", help="First measured day, e.g. 2028-02-23 (default: that Wednesday)."),
    ),
    (
        "tz",
        str | None,
        typer.Option(None, "--tz", help="Time zone of --start and of profiles (default: the pool's schedule's)."),
    ),
    (
        "holiday",
        str | None,
        typer.Option(None, "--holiday", help="Unforecast: this weekday (YYYY-MM-DD) gets the Sunday before's traffic."),
    ),
    (
        "growth",
        float | None,
        typer.Option(None, "--growth", help="Unforecast: traffic grows this % a week, from the first learned day."),
    ),
    (
        "shift",
        str | None,
        typer.Option(
            None, "--shift", help="Unforecast: H[@HH:MM]: from then (default: the start) traffic comes H hours early."
        ),
    ),
    (
        "burst",
        str | None,
        typer.Option(None, "--burst", help="Unforecast: KxMm@HH:MM: K times the rate for M minutes, e.g. 3x30m@12:00."),
    ),
    (
        "mix_output",
        str | None,
        typer.Option(
            None, "--mix-output", help="Unforecast: X[@HH:MM]: from then (default: the start) outputs X x longer."
        ),
    ),
)


def traffic_options(command: Command) -> Command:
    """Replace ``command``'s ``traffic_opts`` parameter with the shared flags (see the module docstring)."""
    own = inspect.signature(command)
    hints = typing.get_type_hints(command)
    kept = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own.parameters.values()]
    kept = [p for p in kept if p.name != "traffic_opts"]
    if len(kept) == len(own.parameters):
        raise TypeError(f"{command.__name__} has no traffic_opts parameter")
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, kind, option in _OPTIONS
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = TrafficOptions(**{name: kwargs.pop(name) for name, _, _ in _OPTIONS if name in kwargs})
        return command(*args, traffic_opts=opts, **kwargs)

    params = [*(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept), *shared]
    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return typing.cast(Command, wrapper)
