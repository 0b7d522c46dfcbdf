"""Open-loop load generator for any OpenAI-compatible URL (``ebbtide loadtest``): arrivals, client, report."""

from __future__ import annotations

from ebbtide.loadtest.arrivals import Arrival, ArrivalError, profile_arrivals, trace_arrivals
from ebbtide.loadtest.report import LoadReport, percentiles, summarize
from ebbtide.loadtest.runner import LoadOptions, RequestResult, run_load

__all__ = [
    "Arrival", "ArrivalError", "LoadOptions", "LoadReport", "RequestResult",
    "percentiles", "profile_arrivals", "run_load", "summarize", "trace_arrivals",
]
