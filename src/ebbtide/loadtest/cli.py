"""``ebbtide loadtest``: open-loop load at a profile's or a trace's pace against any OpenAI-compatible URL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ebbtide.loadtest.arrivals import Arrival, ArrivalError, profile_arrivals, trace_arrivals
from ebbtide.loadtest.report import LoadReport, summarize
from ebbtide.loadtest.runner import LoadOptions, run_load

__all__ = ["loadtest", "register"]

MAX_DURATION_S = 3600.0
MAX_REQUESTS = 1_000_000


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _arrivals(
    profile: str | None, trace: Path | None, compress: float | None, duration_s: float, max_requests: int,
    seed: int, tz: str, start_hour: float, rate_scale: float, rps: float | None,
) -> tuple[list[Arrival], str]:
    if (profile is None) == (trace is None):
        raise _fail("give exactly one of --profile NAME or --trace FILE")
    try:
        if trace is not None:
            c = compress or 1.0
            return trace_arrivals(trace, compress=c, duration_s=duration_s, max_requests=max_requests), (
                f"trace {trace} ×{c:g}")
        assert profile is not None
        c = compress or 1.0
        found = profile_arrivals(profile, compress=c, duration_s=duration_s, max_requests=max_requests,
                                 seed=seed, tz=tz, start_hour=start_hour, rate_scale=rate_scale, rps=rps)
        return found, f"profile {profile} ×{c:g} from hour {start_hour:g} ({tz}), seed {seed}"
    except ArrivalError as exc:
        raise _fail(str(exc)) from None


def _print(report: LoadReport) -> None:
    console = Console(highlight=False)
    console.print(f"{report.source} → {report.url} ({'stream' if report.stream else 'no stream'})")
    console.print(f"scheduled {report.scheduled}, sent {report.sent}, ok {report.completed_ok} in "
                  f"{report.elapsed_s:.1f} s: offered {report.offered_rps:.2f}/s, "
                  f"achieved {report.achieved_rps:.2f}/s")
    table = Table()
    for col in ("seconds", "p50", "p90", "p95", "p99", "max"):
        table.add_column(col, justify="right")
    rows = (("latency", report.latency_s), ("TTFT", report.ttft_s), ("send lateness", report.lateness_s))
    for name, row in rows:
        table.add_row(name, *("-" if v is None else f"{v:.4f}" for v in row.values()))
    console.print(table)
    console.print("outcomes: " + ", ".join(f"{code}: {n}" for code, n in report.codes.items()))
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


Opt = typer.Option
UrlOpt = Annotated[str, Opt("--url", help="Base URL of the gateway or engine (…/v1 is fine).")]
ProfileOpt = Annotated[str | None, Opt("--profile", help="Traffic profile: business-hours, constant.")]
TraceOpt = Annotated[Path | None, Opt("--trace", help="CSV: TIMESTAMP,ContextTokens,GeneratedTokens.")]
CompressOpt = Annotated[float | None, Opt("--compress", help="Profile/trace seconds per wall second.")]
DurationOpt = Annotated[float, Opt("--duration", help="Stop sending after S seconds (≤ 3600).")]
MaxReqOpt = Annotated[int, Opt("--max-requests", help="Stop after N requests.")]
ModelOpt = Annotated[str, Opt("--model", help="`model` to send (a pool name for ebbtide).")]
StreamOpt = Annotated[bool, Opt("--stream/--no-stream", help="SSE streaming (TTFT measured).")]
JsonOpt = Annotated[bool, Opt("--json", help="Print the report as JSON.")]
RateOpt = Annotated[float, Opt("--rate-scale", help="Multiply the profile's rates.")]
RpsOpt = Annotated[float | None, Opt("--rps", help="Rate of the `constant` profile.")]
HourOpt = Annotated[float, Opt("--start-hour", help="Profile start, hours after Mon 00:00.")]
TzOpt = Annotated[str, Opt("--tz", help="Time zone of the profile's day.")]
SeedOpt = Annotated[int, Opt("--seed", help="Seed of the arrival process.")]
EndpointOpt = Annotated[str, Opt("--endpoint", help="chat or completions.")]
MaxTokOpt = Annotated[int, Opt("--max-tokens", help="Cap on each request's max_tokens.")]
PromptOpt = Annotated[int, Opt("--max-prompt-tokens", help="Cap on prompt words.")]
TimeoutOpt = Annotated[float, Opt("--timeout", help="Per-request timeout, seconds.")]
DrainOpt = Annotated[float, Opt("--drain", help="After the last arrival, wait ≤ S for answers.")]
InflightOpt = Annotated[int, Opt("--max-inflight", help="More in flight → counted dropped.")]
KeyOpt = Annotated[str | None, Opt("--api-key", envvar="EBBTIDE_API_KEY", help="Bearer key.")]
FailOpt = Annotated[bool, Opt("--fail-on-errors", help="Exit 1 if any request failed.")]


def loadtest(
    url: UrlOpt,
    profile: ProfileOpt = None,
    trace: TraceOpt = None,
    compress: CompressOpt = None,
    duration: DurationOpt = 60.0,
    max_requests: MaxReqOpt = 10_000,
    model: ModelOpt = "default",
    stream: StreamOpt = True,
    as_json: JsonOpt = False,
    rate_scale: RateOpt = 1.0,
    rps: RpsOpt = None,
    start_hour: HourOpt = 0.0,
    tz: TzOpt = "America/New_York",
    seed: SeedOpt = 0,
    endpoint: EndpointOpt = "chat",
    max_tokens: MaxTokOpt = 128,
    max_prompt_tokens: PromptOpt = 512,
    timeout: TimeoutOpt = 60.0,
    drain: DrainOpt = 30.0,
    max_inflight: InflightOpt = 2000,
    api_key: KeyOpt = None,
    fail_on_errors: FailOpt = False,
) -> None:
    """Open-loop load (arrivals never wait for answers), bounded by --duration and --max-requests."""
    if not 0 < duration <= MAX_DURATION_S:
        raise _fail(f"--duration = {duration}: must be in (0, {MAX_DURATION_S:g}] seconds")
    if not 1 <= max_requests <= MAX_REQUESTS:
        raise _fail(f"--max-requests = {max_requests}: must be in [1, {MAX_REQUESTS}]")
    if endpoint not in ("chat", "completions"):
        raise _fail(f"--endpoint = {endpoint!r}: must be chat or completions")
    if timeout <= 0 or drain < 0 or max_inflight < 1 or max_tokens < 1 or max_prompt_tokens < 1:
        raise _fail("need --timeout > 0, --drain >= 0, --max-inflight/--max-tokens/--max-prompt-tokens >= 1")
    arrivals, source = _arrivals(profile, trace, compress, duration, max_requests, seed, tz, start_hour,
                                 rate_scale, rps)
    opts = LoadOptions(url=url, model=model, stream=stream, endpoint=endpoint,
                       max_prompt_tokens=max_prompt_tokens, max_output_tokens=max_tokens,
                       request_timeout_s=timeout, drain_s=drain, max_inflight=max_inflight, api_key=api_key)
    outcomes, elapsed = asyncio.run(run_load(arrivals, opts))
    window = max(duration if trace is None else (arrivals[-1].at_s if arrivals else 0.0), 1e-9)
    notes = []
    if len(arrivals) >= max_requests:
        notes.append(f"stopped at --max-requests {max_requests} before --duration {duration:g} s")
        window = max(arrivals[-1].at_s, 1e-9)
    if any(o.code == "dropped" for o in outcomes):
        notes.append(f"over --max-inflight {max_inflight}: the client, not only the server, was saturated")
    report = summarize(outcomes, url=url, source=source, stream=stream, scheduled=len(arrivals),
                       window_s=window, elapsed_s=elapsed, notes=notes)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    if fail_on_errors and report.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest)
