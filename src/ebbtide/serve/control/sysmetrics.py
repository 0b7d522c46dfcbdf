"""Per-replica system and engine metrics: process CPU/RSS (psutil, local pids) and the engine's own /metrics."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import psutil

from ebbtide.core.signals import ReplicaState
from ebbtide.serve.control.metrics import GatewayMetrics
from ebbtide.serve.gateway.broker import Replica

__all__ = ["scrape_replicas"]

SCRAPE_TIMEOUT = aiohttp.ClientTimeout(total=2)


def _process_sample(metrics: GatewayMetrics, pool: str, replica: Replica) -> None:
    pid = replica.handle.get("pid")
    if not isinstance(pid, int):
        return
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        cpu = proc.cpu_times()
        metrics.replica_cpu.labels(pool, replica.replica_id).set(cpu.user + cpu.system)
        metrics.replica_rss.labels(pool, replica.replica_id).set(proc.memory_info().rss)


async def _engine_sample(
    metrics: GatewayMetrics, session: aiohttp.ClientSession, pool: str, replica: Replica, engine: object
) -> None:
    try:
        async with session.get(replica.base_url + "/metrics", timeout=SCRAPE_TIMEOUT) as resp:
            if resp.status != 200:
                return
            stats = engine.parse_metrics(await resp.text())  # type: ignore[attr-defined]
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return
    labels = (pool, replica.replica_id)
    for gauge, value in ((metrics.engine_running, stats.requests_running),
                         (metrics.engine_waiting, stats.requests_waiting),
                         (metrics.engine_kv_cache, stats.kv_cache_usage)):
        if value is not None:
            gauge.labels(*labels).set(value)


async def scrape_replicas(metrics: GatewayMetrics, session: aiohttp.ClientSession, pools: dict[str, object]) -> None:
    for gauge in (metrics.replica_cpu, metrics.replica_rss, metrics.engine_running, metrics.engine_waiting,
                  metrics.engine_kv_cache):
        gauge.clear()
    jobs = []
    for name, pr in pools.items():
        fleet = pr.fleet  # type: ignore[attr-defined]
        for replica in fleet.live_replicas():
            if replica.state is not ReplicaState.READY:
                continue
            _process_sample(metrics, name, replica)
            jobs.append(_engine_sample(metrics, session, name, replica, fleet.engine_of(replica)))
    await asyncio.gather(*jobs)
