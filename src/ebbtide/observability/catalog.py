"""The series the exports may query, read from :class:`~ebbtide.serve.metrics.GatewayMetrics` itself: a
renamed metric breaks the export tests instead of a dashboard in production.

``PENDING_METRICS`` are contract names the gateway does not emit yet (issue 7: the fallback pool). Queries on
them return no data until it does; the alert and panel are ready for that day.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ebbtide.serve.metrics import GatewayMetrics

__all__ = ["PENDING_METRICS", "metric_catalog"]

# name → labels. The gateway should add: Counter("ebbtide_fallbacks", ..., ["pool", "fallback"]), incremented
# once per request sent to ``fallback`` instead of ``pool``.
PENDING_METRICS: dict[str, frozenset[str]] = {"ebbtide_fallbacks_total": frozenset({"pool", "fallback"})}


def metric_catalog(include_pending: bool = True) -> dict[str, frozenset[str]]:
    """Each series name the gateway exposes (``_total``, ``_bucket``/``_sum``/``_count``) → label names."""
    found: dict[str, frozenset[str]] = {}
    for value in vars(GatewayMetrics()).values():
        if not isinstance(value, Counter | Gauge | Histogram):
            continue
        name: str = value._name
        labels = frozenset(value._labelnames)
        if isinstance(value, Counter):
            found[name + "_total"] = labels
        elif isinstance(value, Histogram):
            found[name + "_bucket"] = labels | {"le"}
            found[name + "_sum"] = labels
            found[name + "_count"] = labels
        else:
            found[name] = labels
    if include_pending:
        for name, labels in PENDING_METRICS.items():
            found.setdefault(name, labels)
    return found
