"""The Ray provider on a real two-node Ray cluster: head on 127.0.0.2, worker on 127.0.0.3, one CPU each.

Replicas are placed by resources and land on both nodes; a lost worker node's replica is failed and replaced
on the head; ``ebbtide serve`` scales 1 → 2 → 1 through Ray with llama.cpp replicas and no failed request. The
cluster is started once for the module and always killed (with its temp dir), whatever the tests do.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
import yaml

from ebbtide.config import Config, RayProviderSpec, load_config
from ebbtide.engines import Health, build_engine
from ebbtide.providers.base import Launched
from ebbtide.providers.ray.cluster import LocalRayCluster, NodeSpec
from ebbtide.providers.ray.provider import RayProvider
from tests.gateway_harness import CHAT_BODY, GatewayProcess, LoadLoop, gateway, http_json, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    # A short root: Ray's Unix socket paths under it must stay below ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="ebr-", dir="/tmp"))
    with LocalRayCluster(root, [NodeSpec("head", 1, {"head": 1}), NodeSpec("worker", 1, {"worker": 1})]) as c:
        yield c
    print(f"ray start (node, attempt, s): {c.starts}")
    assert not root.exists()


@pytest.fixture
def nodes(cluster: LocalRayCluster) -> LocalRayCluster:
    """Both nodes up: restarts the worker if an earlier test took it down."""
    cluster.start()
    return cluster


def ray_config(path: Path, model: Path, cluster: LocalRayCluster, **pool: Any) -> Path:
    write_config(path, model, **pool)
    raw = yaml.safe_load(path.read_text())
    raw["provider"] = {"kind": "ray", "address": cluster.address, "namespace": f"test-{path.parent.name}"}
    path.write_text(yaml.safe_dump(raw))
    return path


def events(gw: GatewayProcess, kind: str) -> list[dict[str, Any]]:
    return [e for e in gw.admin("/admin/api/events")[1]["events"] if e["kind"] == kind]


def host(url: str) -> str | None:
    return urlsplit(url).hostname


async def until_ready(provider: RayProvider, engine: Any, session: aiohttp.ClientSession, replica: Launched,
                      timeout_s: float) -> None:
    """Poll as the fleet does: the actor is alive (which renews its lease) and the server answers READY."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await engine.health(session, replica.base_url) is not Health.READY:
        assert await provider.alive(replica), f"{replica.replica_id} died while starting"
        assert asyncio.get_running_loop().time() < deadline, f"{replica.base_url} not ready in {timeout_s}s"
        await asyncio.sleep(0.1)


async def test_replicas_are_placed_by_resources_on_both_nodes(nodes: LocalRayCluster, tiny_gguf_path: Path,
                                                               tmp_path: Path) -> None:
    cfg_path = ray_config(tmp_path / "c.yaml", tiny_gguf_path, nodes, ray={"num_cpus": 1},
                          replica={"startup_timeout_s": 60})
    cfg: Config = load_config(cfg_path)
    pool = cfg.pools[0]
    engine = build_engine(pool.engine)
    assert isinstance(cfg.provider, RayProviderSpec)
    provider = RayProvider(cfg.provider, tmp_path)
    launched: list[Launched] = []
    try:
        launched = list(await asyncio.gather(*(provider.launch(pool, engine, f"tiny-{i}") for i in (1, 2))))
        assert {r.handle["node_id"] for r in launched} == {nodes.nodes["head"].node_id,
                                                           nodes.nodes["worker"].node_id}
        assert sorted(host(r.base_url) or "" for r in launched) == [HEAD_IP, WORKER_IP]
        async with aiohttp.ClientSession() as session:
            for r in launched:
                await until_ready(provider, engine, session, r, 60)
                assert await provider.alive(r)
        # Both CPUs are taken: a third replica has nowhere to go and its launch fails at the startup timeout.
        short = pool.replica.model_copy(update={"startup_timeout_s": 2.0})
        tight = pool.model_copy(update={"replica": short})
        with pytest.raises(TimeoutError, match="no Ray node could host the replica"):
            await provider.launch(tight, engine, "tiny-3")
        for r in launched:
            await provider.terminate(r, 3.0)
            assert not await provider.alive(r)
            assert not psutil.pid_exists(int(r.handle["server_pid"])) or _zombie(int(r.handle["server_pid"]))
    finally:
        for r in launched:
            await provider.terminate(r, 1.0)
        await provider.close()


def _zombie(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_scale_out_and_in_through_ray_without_failed_requests(nodes: LocalRayCluster, tiny_gguf_path: Path,
                                                              tmp_path: Path, free_port: int) -> None:
    cfg = ray_config(
        tmp_path / "c.yaml", tiny_gguf_path, nodes,
        engine={"slots": 1}, ray={"num_cpus": 1},
        replica={"startup_timeout_s": 90},
        scaling={"min_replicas": 1, "max_replicas": 2, "scale_in_cooldown_s": 60,
                 "policies": [{"kind": "queue_depth", "target": 1, "scale_down_stabilization_s": 120}]},
    )  # fmt: skip
    with gateway(cfg, tmp_path / "state", free_port, "--time-scale", "60", timeout_s=120) as gw:
        with LoadLoop(gw.url, clients=6) as load:
            wait_for(lambda: len(gw.replicas("tiny")) >= 2, 110, "scale-out to 2 ready replicas")
            hosts = sorted(host(r["url"]) or "" for r in gw.replicas("tiny"))
        assert hosts == [HEAD_IP, WORKER_IP]
        assert load.codes and set(load.codes) == {200}, load.describe()
        wait_for(lambda: len(gw.replicas("tiny")) == 1 and not gw.replicas("tiny", "draining"), 60,
                 "scale-in back to 1")
        assert len(events(gw, "stopped")) == 1
        directions = [d["direction"] for d in gw.admin("/admin/api/decisions")[1]["decisions"]]
        assert "out" in directions and "in" in directions


def test_lost_worker_node_replica_is_failed_and_replaced_on_head(nodes: LocalRayCluster, tiny_gguf_path: Path,
                                                                  tmp_path: Path, free_port: int) -> None:
    cfg = ray_config(
        tmp_path / "c.yaml", tiny_gguf_path, nodes,
        ray={"num_cpus": 0.5}, replica={"startup_timeout_s": 90, "health_interval_s": 0.5},
        scaling={"min_replicas": 2, "max_replicas": 2, "policies": []},
    )  # fmt: skip
    with gateway(cfg, tmp_path / "state", free_port, timeout_s=120) as gw:
        wait_for(lambda: len(gw.replicas("tiny")) == 2, 120, "2 ready replicas")
        by_host = {host(r["url"]): r["id"] for r in gw.replicas("tiny")}
        assert set(by_host) == {HEAD_IP, WORKER_IP}, "spread placement puts one replica on each node"
        lost = by_host[WORKER_IP]
        nodes.kill_node("worker")
        wait_for(lambda: any(e["replica_id"] == lost for e in events(gw, "failed")), 60, f"{lost} failed")

        def replaced_on_head() -> bool:
            ready = gw.replicas("tiny")
            return len(ready) == 2 and all(host(r["url"]) == HEAD_IP for r in ready)

        wait_for(replaced_on_head, 120, "a replacement replica ready on the head")
        assert lost not in {r["id"] for r in gw.replicas("tiny")}
        for _ in range(4):
            status, body = http_json(gw.url + "/v1/chat/completions", {**CHAT_BODY, "max_tokens": 8})
            assert status == 200, body


async def test_a_hot_standby_is_paused_and_resumed_through_its_actor(nodes: LocalRayCluster, tiny_gguf_path: Path,
                                                                     tmp_path: Path) -> None:
    cfg_path = ray_config(tmp_path / "c.yaml", tiny_gguf_path, nodes, ray={"num_cpus": 1},
                          replica={"startup_timeout_s": 60})
    cfg: Config = load_config(cfg_path)
    pool = cfg.pools[0]
    engine = build_engine(pool.engine)
    assert isinstance(cfg.provider, RayProviderSpec)
    provider = RayProvider(cfg.provider, tmp_path)
    replica: Launched | None = None
    try:
        replica = await provider.launch(pool, engine, "tiny-hot")
        server = psutil.Process(int(replica.handle["server_pid"]))
        async with aiohttp.ClientSession() as session:
            await until_ready(provider, engine, session, replica, 60)
            phases = await provider.phases(replica)  # written by the worker next to its lease on that node
            assert phases is not None and phases["spawned"] <= phases["started"] <= phases["weights_loaded"]
            await provider.pause(replica)
            wait_for(lambda: server.status() == psutil.STATUS_STOPPED, 10, "the server stopped (SIGSTOP)")
            assert await provider.alive(replica)  # a paused server is alive: the fleet keeps it as standby
            await provider.resume(replica)
            await until_ready(provider, engine, session, replica, 30)
            assert server.status() != psutil.STATUS_STOPPED
            await provider.pause(replica)
            wait_for(lambda: server.status() == psutil.STATUS_STOPPED, 10, "paused again")
        await provider.terminate(replica, 3.0)  # SIGTERM, then SIGCONT so that a paused server acts on it
        assert not psutil.pid_exists(server.pid) or _zombie(server.pid)
    finally:
        if replica is not None:
            await provider.terminate(replica, 1.0)
        await provider.close()
