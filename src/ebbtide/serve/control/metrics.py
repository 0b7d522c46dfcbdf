"""Prometheus metrics (names are a contract, DESIGN §6), one registry per gateway: no module globals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)
COLD_START_BUCKETS = (0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 240, 480, 900)
PHASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 240, 480)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ebbtide_requests", "Requests by pool and HTTP status.", ["pool", "code"], registry=r)
        self.duration = Histogram(
            "ebbtide_request_duration_seconds", "End-to-end latency.", ["pool"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "ebbtide_ttft_seconds", "Time to first streamed byte.", ["pool"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.output_tokens = Counter("ebbtide_output_tokens", "Output tokens served.", ["pool"], registry=r)
        self.queue_depth = Gauge("ebbtide_queue_depth", "Requests waiting for a slot.", ["pool"], registry=r)
        self.inflight = Gauge("ebbtide_inflight", "Requests running on a replica.", ["pool", "replica"], registry=r)
        self.replicas = Gauge("ebbtide_replicas", "Replicas by state.", ["pool", "state"], registry=r)
        self.decisions = Counter(
            "ebbtide_scale_decisions", "Scaling decisions that changed the count.", ["pool", "direction"], registry=r
        )
        self.cold_start = Histogram(
            "ebbtide_cold_start_seconds", "Replica requested → ready.", ["pool"], buckets=COLD_START_BUCKETS,
            registry=r,
        )
        self.cold_start_phase = Histogram(
            "ebbtide_cold_start_phase_seconds",
            "Each phase of a replica start (provision, process_start, engine_import, weights_staged, weights_loaded, "
            "listening, health_ok, first_token; wake for a promoted hot standby).",
            ["pool", "phase"], buckets=PHASE_BUCKETS, registry=r,
        )  # fmt: skip
        self.cost = Counter("ebbtide_cost_usd", "Replica cost accrued.", ["pool"], registry=r)
        self.retries = Counter("ebbtide_retries", "Requests retried on another replica.", ["pool"], registry=r)
        self.replica_hours = Counter("ebbtide_replica_hours", "Replica-hours accrued (paid).", ["pool"], registry=r)
        self.cost_per_request = Gauge(
            "ebbtide_cost_per_request_usd", "Cost so far / requests answered.", ["pool"], registry=r
        )
        self.cost_per_mtok = Gauge(
            "ebbtide_cost_per_million_output_tokens_usd", "Cost so far per 1M output tokens.", ["pool"], registry=r
        )
        self.replica_cpu = Gauge(
            "ebbtide_replica_cpu_seconds", "CPU time used by the replica's process.", ["pool", "replica"], registry=r
        )
        self.replica_rss = Gauge(
            "ebbtide_replica_rss_bytes", "Resident memory of the replica's process.", ["pool", "replica"], registry=r
        )
        self.engine_running = Gauge(
            "ebbtide_engine_requests_running", "Requests the engine reports running.", ["pool", "replica"], registry=r
        )
        self.engine_waiting = Gauge(
            "ebbtide_engine_requests_waiting", "Requests the engine reports waiting.", ["pool", "replica"], registry=r
        )
        self.engine_kv_cache = Gauge(
            "ebbtide_engine_kv_cache_usage", "KV cache use 0-1 (GPU engines).", ["pool", "replica"], registry=r
        )
        self.fallbacks = Counter(
            "ebbtide_fallbacks", "Requests sent to the fallback pool.", ["pool", "fallback"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
