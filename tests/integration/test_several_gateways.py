"""Several ``ebbtide serve`` processes, one real Redis, real tiny-GGUF llama.cpp replicas on loopback.

Each failure is driven under bounded load and judged by what clients saw at the gateways that stayed up, what
scaling did (one leader, no duplicate replica) and what was lost. Every wait is for a state, with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gateway_harness import CHAT_BODY, LoadLoop, engine_processes, http_json, wait_for, write_config
from tests.redis_harness import CutProxy, Gateways, RedisServer, several_gateways

pytestmark = pytest.mark.slow

TTL_S = 3.0
BODY = {**CHAT_BODY, "max_tokens": 8}


def _config(tmp_path: Path, model: Path, replicas: int = 2) -> Path:
    path = write_config(tmp_path / "ebbtide.yaml", model,
                        scaling={"min_replicas": replicas, "max_replicas": replicas})
    cfg = yaml.safe_load(path.read_text())
    cfg["state"] = {"backend": "redis", "url": "redis://127.0.0.1:1/0", "lease_ttl_s": TTL_S,
                    "sync_interval_s": 0.25}  # the URL is overridden per gateway by EBBTIDE_REDIS_URL
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(config: Path, redis_url: str, *args: str) -> str:
    env = {**os.environ, "EBBTIDE_REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-m", "ebbtide", *args, "-c", str(config)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Cluster:
    def __init__(self, gws: Gateways, server: RedisServer, proxies: dict[str, CutProxy]) -> None:
        self.gws, self.server, self.proxies = gws, server, proxies

    def up(self, names: tuple[str, ...] = ("a", "b", "c"), replicas: int = 2) -> None:
        for name in names:
            self.proxies[name] = CutProxy(self.server.port)
            self.gws.start(name, self.proxies[name].url)
        wait_for(lambda: self.gws.leader() is not None, 30, "one leader")
        wait_for(lambda: all(len(g.ready()) == replicas for g in self.gws.procs if g.alive()), 180,
                 f"every gateway routing to {replicas} ready replicas")

    def live_ids(self) -> set[str]:
        rows = self.server.client().hvals("ebbtide:replicas")
        return {r["replica_id"] for r in map(json.loads, rows) if r["state"] not in ("stopped", "failed")}

    def requested(self) -> int:
        lines = [str(line) for line in self.server.client().lrange("ebbtide:events", 0, -1)]
        return sum(1 for line in lines if json.loads(line.partition(" ")[2])["kind"] == "requested")


@pytest.fixture
def cluster(tmp_path: Path, tiny_gguf_path: Path) -> Iterator[Cluster]:
    server = RedisServer(tmp_path / "redis").start()
    config = _config(tmp_path, tiny_gguf_path)
    try:
        with several_gateways(tmp_path / "state", config) as gws:
            yield Cluster(gws, server, {})
    finally:
        server.kill()


class KeyedLoad(LoadLoop):
    """``LoadLoop`` sending ``Authorization: Bearer <key>`` (or nothing without a key)."""

    def __init__(self, url: str, clients: int, key: str | None = None, max_requests: int = 3000) -> None:
        super().__init__(url, clients, body=BODY, max_s=120, max_requests=max_requests, timeout_s=60)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _one(self) -> tuple[int | str, str]:
        try:
            status, answer = http_json(self.url + self.path, self.body, self.headers, timeout=self.timeout_s)
        except Exception as exc:  # every way a request can fail is a failed request, never a lost one
            return type(exc).__name__, repr(exc)
        return status, "" if status == 200 else str(answer)[:300]


def _loads(gws: list[Any], clients: int = 2, key: str | None = None, max_requests: int = 3000) -> list[LoadLoop]:
    return [KeyedLoad(g.url, clients, key, max_requests) for g in gws]


def _answers(g: Any, code: int, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    return lambda: http_json(g.url + "/v1/chat/completions", BODY, headers)[0] == code


def _create_key(cluster: Cluster, *args: str) -> tuple[str, float]:
    """A key made with the CLI, and how long until every gateway refuses a keyless call (the mirror has it)."""
    key = _cli(cluster.gws.config, cluster.server.url, "keys", "create", "--tenant", "acme", *args).strip()
    t0 = time.monotonic()
    for g in cluster.gws.procs:
        wait_for(_answers(g, 401), 30, f"{g.name} has keys")
    return key, time.monotonic() - t0


def test_leader_sigkilled_under_load(cluster: Cluster, record_property: Any) -> None:
    cluster.up()
    leader = cluster.gws.leader()
    assert leader is not None
    others = [g for g in cluster.gws.procs if g is not leader]
    before, requested = cluster.live_ids(), cluster.requested()
    loads = _loads(others)
    for load in loads:
        load.__enter__()
    try:
        wait_for(lambda: all(len(load.codes) >= 10 for load in loads), 60, "load flowing through both followers")
        killed_at = time.monotonic()
        leader.sigkill()
        new = wait_for(lambda: cluster.gws.leader(), 30, "a new leader")
        takeover_s = time.monotonic() - killed_at
        counts = [len(load.codes) for load in loads]
        wait_for(lambda: all(len(load.codes) >= n + 10 for load, n in zip(loads, counts, strict=True)), 60,
                 "load still flowing after the takeover")
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    record_property("takeover_s", round(takeover_s, 2))
    print(f"takeover {takeover_s:.2f}s (lease TTL {TTL_S}s); requests: {[load.describe() for load in loads]}")
    for load in loads:
        assert set(load.codes) == {200}, load.describe()
    assert cluster.live_ids() == before, "the new leader adopted the fleet: the same replicas, no duplicate"
    assert cluster.requested() == requested, "no replica was started after the takeover"
    assert len(engine_processes(cluster.gws.state_dir)) == len(before)
    notes = _cli(cluster.gws.config, cluster.server.url, "decisions", "--json", "--since", "1h")
    took = [d for d in json.loads(notes)["decisions"] if any("took the lease" in n for n in d["notes"])]
    assert took and new.shared()["gateway"] in took[-1]["notes"][0] and "from" in took[-1]["notes"][0]


def test_follower_sigkilled_and_its_signals_stop_counting(cluster: Cluster) -> None:
    cluster.up()
    leader = cluster.gws.leader()
    assert leader is not None
    follower, other = [g for g in cluster.gws.procs if g is not leader]
    before = cluster.live_ids()
    loads = _loads([leader, other])
    for load in loads:
        load.__enter__()
    try:
        wait_for(lambda: all(len(load.codes) >= 10 for load in loads), 60, "load flowing")
        wait_for(lambda: leader.shared()["gateways"] == 3, 30, "the leader counting all three gateways")
        follower.sigkill()
        wait_for(lambda: leader.shared()["gateways"] == 2, 30, "the dead follower's signals dropped out")
        counts = [len(load.codes) for load in loads]
        wait_for(lambda: all(len(load.codes) >= n + 10 for load, n in zip(loads, counts, strict=True)), 60,
                 "load still flowing")
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    for load in loads:
        assert set(load.codes) == {200}, load.describe()
    assert cluster.gws.leader() is leader and cluster.live_ids() == before


def test_redis_restarted_under_load(cluster: Cluster) -> None:
    cluster.up()
    key, _ = _create_key(cluster)
    headers = {"Authorization": f"Bearer {key}"}
    before = cluster.live_ids()
    loads = _loads(cluster.gws.procs, key=key)
    for load in loads:
        load.__enter__()
    try:
        wait_for(lambda: all(len(load.codes) >= 5 for load in loads), 60, "load flowing")
        cluster.server.kill()
        wait_for(lambda: not any(g.shared()["connected"] for g in cluster.gws.procs), 30, "every gateway noticed")
        wait_for(lambda: cluster.gws.leader() is None, 30, "the leader stopped acting without Redis")
        for g in cluster.gws.procs:  # still serving, and still checking keys from what they know
            assert http_json(g.url + "/v1/chat/completions", BODY, headers)[0] == 200
            assert http_json(g.url + "/v1/chat/completions", BODY, {"Authorization": "Bearer ebt_nope"})[0] == 401
        counts = [len(load.codes) for load in loads]
        wait_for(lambda: all(len(load.codes) >= n + 5 for load, n in zip(loads, counts, strict=True)), 60,
                 "load flowing with Redis down")
        cluster.server.start()  # same port, same append-only file
        wait_for(lambda: all(g.shared()["connected"] for g in cluster.gws.procs), 30, "every gateway resynced")
        wait_for(lambda: cluster.gws.leader() is not None, 30, "a leader again")
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    for load in loads:
        assert set(load.codes) == {200}, load.describe()
    assert cluster.live_ids() == before and len(engine_processes(cluster.gws.state_dir)) == len(before)


def test_one_gateway_partitioned_from_redis(cluster: Cluster) -> None:
    cluster.up()
    leader = cluster.gws.leader()
    assert leader is not None
    before = cluster.live_ids()
    loads = _loads(cluster.gws.procs)
    for load in loads:
        load.__enter__()
    try:
        wait_for(lambda: all(len(load.codes) >= 5 for load in loads), 60, "load flowing")
        cluster.proxies[leader.name].cut()
        wait_for(lambda: not leader.shared()["leads"], 30, "the cut-off leader stopped acting")
        new = wait_for(lambda: cluster.gws.leader(), 30, "a follower took the lease")
        assert new is not leader
        counts = [len(load.codes) for load in loads]
        wait_for(lambda: all(len(load.codes) >= n + 5 for load, n in zip(loads, counts, strict=True)), 60,
                 "every gateway serving, the cut-off one too")
        cluster.proxies[leader.name].heal()
        wait_for(lambda: leader.shared()["connected"] and leader.shared()["leader"] == new.shared()["gateway"], 30,
                 "the healed gateway follows the new leader")
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    for load in loads:
        assert set(load.codes) == {200}, load.describe()
    assert cluster.live_ids() == before and len(engine_processes(cluster.gws.state_dir)) == len(before)


def test_a_tenant_quota_holds_across_three_gateways_and_a_revocation_reaches_all(
        cluster: Cluster, record_property: Any) -> None:
    cluster.up()
    rpm = 120
    key, _ = _create_key(cluster, "--rpm", str(rpm))
    loads = _loads(cluster.gws.procs, clients=2, key=key, max_requests=20_000)
    started = time.monotonic()
    for load in loads:
        load.__enter__()
    try:
        # the window: a burst, then 12 s of refill under constant excess (what the allowance below counts)
        wait_for(lambda: sum(load.codes.count(429) for load in loads) >= 300 and time.monotonic() - started >= 12,
                 120, "the tenant well over its quota for 12 s")
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    elapsed = time.monotonic() - started
    assert all(len(load.codes) < 20_000 for load in loads), "the load ran the whole window"
    admitted = sum(load.codes.count(200) for load in loads)
    allowance = rpm + rpm * elapsed / 60  # a full minute's burst, then the refill over the run
    record_property("quota_admitted_vs_allowance", round(admitted / allowance, 3))
    print(f"admitted {admitted} of an allowance {allowance:.1f} over {elapsed:.1f}s across 3 gateways; "
          f"{[load.describe().split(';')[0] for load in loads]}")
    assert all(set(load.codes) <= {200, 429} for load in loads), [load.describe() for load in loads]
    assert all(load.codes.count(200) > 0 for load in loads), "each gateway admitted some"
    assert 0.95 * allowance <= admitted <= 1.05 * allowance
    other, _ = _create_key(cluster)
    auth = {"Authorization": f"Bearer {other}"}
    for g in cluster.gws.procs:
        wait_for(_answers(g, 200, auth), 30, "the key works")
    _cli(cluster.gws.config, cluster.server.url, "keys", "revoke", other.split("_")[1])
    revoked_at = time.monotonic()
    for g in cluster.gws.procs:
        wait_for(_answers(g, 401, auth), 30, "refused")
    refused_all_s = time.monotonic() - revoked_at
    record_property("revocation_s", round(refused_all_s, 3))
    print(f"revocation refused by all three gateways {refused_all_s:.3f}s after `keys revoke` returned")


def test_a_gateway_only_follower_serves_but_never_takes_the_lease(cluster: Cluster) -> None:
    cluster.up(names=("a",))
    cluster.proxies["b"] = CutProxy(cluster.server.port)
    follower = cluster.gws.start("b", cluster.proxies["b"].url, "--gateway-only")
    wait_for(lambda: len(follower.ready()) == 2, 60, "the follower routing to the leader's replicas")
    assert follower.shared()["may_lead"] is False
    cluster.gws.procs[0].sigkill()
    wait_for(lambda: follower.shared()["leader"] is None, 30, "the lease lapsed")
    with KeyedLoad(follower.url, 2) as load:
        wait_for(lambda: len(load.codes) >= 20, 60, "the follower serving on its own")
    assert set(load.codes) == {200}, load.describe()
    assert cluster.gws.leader() is None, "--gateway-only never leads"


def test_gateway_only_needs_the_redis_backend(tmp_path: Path, tiny_gguf_path: Path) -> None:
    config = write_config(tmp_path / "solo.yaml", tiny_gguf_path)
    done = subprocess.run([sys.executable, "-m", "ebbtide", "serve", "-c", str(config), "--gateway-only"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--gateway-only needs state: {backend: redis}" in done.stderr
    nowhere = _config(tmp_path, tiny_gguf_path)  # its url names port 1: nothing listens there
    done = subprocess.run([sys.executable, "-m", "ebbtide", "serve", "-c", str(nowhere), "--state-dir",
                           str(tmp_path / "s")], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "EBBTIDE_REDIS_URL"} | {"COLUMNS": "300"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "state.url = redis://127.0.0.1:1/0: cannot reach Redis" in done.stdout + done.stderr
