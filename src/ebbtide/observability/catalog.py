"""The series the exports may query, read from :class:`~ebbtide.serve.control.metrics.GatewayMetrics` itself: a
renamed metric breaks the export tests instead of a dashboard in production.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ebbtide.serve.control.metrics import GatewayMetrics

__all__ = ["metric_catalog"]


def metric_catalog() -> dict[str, frozenset[str]]:
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
    return found
