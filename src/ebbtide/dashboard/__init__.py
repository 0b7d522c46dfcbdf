"""The live dashboard: ``/dashboard`` routes, static assets (vendored uPlot) and the time series sampler."""

from __future__ import annotations

from ebbtide.dashboard.routes import dashboard_routes, install_dashboard
from ebbtide.dashboard.series import SERIES_FILE, Sample, SeriesSampler, read_series

__all__ = ["SERIES_FILE", "Sample", "SeriesSampler", "dashboard_routes", "install_dashboard", "read_series"]
