"""The Redis backend's pieces on a real redis-server: lease and fence, API keys and revocation, shared quota
buckets (and their safe local share when Redis is cut off), the write outbox, and a restart without data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ebbtide.core.controller import ScaleDecision
from ebbtide.core.quota import QuotaLimits
from ebbtide.serve.shared.keys import RedisKeyStore
from ebbtide.serve.shared.quota import SharedQuota
from ebbtide.serve.shared.redis_state import RedisState
from ebbtide.serve.shared.store import RedisStore
from tests.redis_harness import CutProxy, RedisServer, wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis").start()
    try:
        yield srv
    finally:
        srv.kill()


def test_lease_fence_and_takeover_follow_core_rules(server: RedisServer) -> None:
    a, b = RedisState(server.url, "t"), RedisState(server.url, "t")
    lease, took = a.claim("a", 1.0)
    assert took and lease is not None and lease.token == 1
    seen, took = b.claim("b", 1.0)
    assert not took and seen is not None and (seen.holder, seen.token) == ("a", 1)
    assert b.claim("c", 1.0, may_lead=False)[1] is False
    assert a.fenced_put("a", 1, "replicas", {"x": "{}"})
    lease, _ = wait_until(lambda: (r := b.claim("b", 1.0))[1] and r, 10, "b takes the lapsed lease")
    assert lease.token == 2
    assert not a.fenced_put("a", 1, "replicas", {"y": "{}"}), "a deposed leader's write must be refused"
    assert server.client().hkeys("t:replicas") == ["x"]
    assert b.release("b", 2) and a.claim("a", 1.0)[0].token == 3  # type: ignore[union-attr]


def test_a_revocation_reaches_another_gateways_mirror_at_its_next_refresh(server: RedisServer) -> None:
    cli, gw = RedisKeyStore(RedisState(server.url, "t")), RedisKeyStore(RedisState(server.url, "t"))
    key, record = cli.create("acme", "batch", rpm=60)
    assert gw.verify(key) is None  # not refreshed yet: the gateway only reads its mirror on the request path
    assert gw.refresh() and gw.verify(key) == record and gw.counts() == (1, 1)
    assert not gw.refresh(), "nothing changed: no reload"
    assert cli.revoke(record.key_id) is not None
    assert gw.refresh() and gw.verify(key) is None and gw.counts() == (1, 0) and gw.ever_had_keys()
    assert gw.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_keys_survive_a_redis_that_lost_its_data_and_a_revocation_still_stands(server: RedisServer) -> None:
    cli, gw = RedisKeyStore(RedisState(server.url, "t")), RedisKeyStore(RedisState(server.url, "t"))
    key, record = cli.create("acme")
    gone, _ = cli.create("old")
    cli.revoke(gone.split("_")[1])
    gw.refresh(force=True)
    server.client().flushall()  # a Redis restarted without its append-only file
    gw.refresh(force=True)
    assert gw.restored == 2 and gw.verify(key) == record and gw.verify(gone) is None
    assert RedisKeyStore(RedisState(server.url, "t")).list_keys()[0].tenant in ("acme", "old")
    assert len(cli.list_keys()) == 2 and len(cli.list_keys(include_revoked=False)) == 1


def test_a_tenant_quota_is_one_bucket_across_three_gateways(server: RedisServer) -> None:
    gws = [SharedQuota(RedisState(server.url, "t"), lambda: 3) for _ in range(3)]
    limits = QuotaLimits(rpm=60)
    admitted = sum(gws[i % 3].admit("acme", limits, 0.0, 10).allowed for i in range(90))
    assert admitted == 60, "a full minute's allowance, then nothing: the same as core/quota.py's bucket"
    refused = gws[0].admit("acme", limits, 0.0, 10)
    assert not refused.allowed and 0 < refused.retry_after_s <= 1.0 and "60 requests/min" in refused.reason
    assert gws[1].admit("other", limits, 0.0, 10).allowed


def redis_seconds(server: RedisServer) -> float:
    seconds, micros = server.client().time()
    return float(seconds) + micros / 1e6


def test_leased_allowance_cuts_round_trips_and_strands_at_most_a_lease_per_gateway(server: RedisServer) -> None:
    gws = [SharedQuota(RedisState(server.url, "t"), lambda: 3) for _ in range(3)]
    limits = QuotaLimits(rpm=6000)  # a lease is 6000 / 600 = 10 requests
    began = redis_seconds(server)  # the bucket refills in Redis's own time, however slow this machine is
    assert all(gws[i % 3].admit("acme", limits, 0.0).allowed for i in range(5000))
    trips = sum(g.round_trips for g in gws)
    assert trips <= 5000 / 11 + 3, f"{trips} round trips for 5000 admissions: leases are spent locally"
    admitted = 5000 + sum(gws[i % 3].admit("acme", limits, 0.0).allowed for i in range(2000))
    refilled = (redis_seconds(server) - began) * 6000 / 60
    assert 6000 - 3 * 10 <= admitted <= 6000 + refilled + 3 * 10, "the bucket, give or take one lease per gateway"
    held = sum(g.leases["acme"].requests for g in gws if "acme" in g.leases)
    level = float(server.client().hget("t:quota:acme", "rl") or 0)
    for g in gws:
        g.expire(10.0)  # their leases ran out: what is left goes back to the bucket
        g.flush()
    after = float(server.client().hget("t:quota:acme", "rl") or 0)
    assert after >= level + held - 1e-6, "every unspent leased request went back"


def test_tpm_settle_corrects_the_shared_bucket_and_a_cut_gateway_meters_its_share(server: RedisServer) -> None:
    proxy = CutProxy(server.port)
    cut = SharedQuota(RedisState(proxy.url, "t", timeout_s=0.5), lambda: 3)
    whole = SharedQuota(RedisState(server.url, "t"), lambda: 3)
    limits = QuotaLimits(rpm=30, tpm=1000)
    assert whole.admit("acme", limits, 0.0, 900).allowed
    assert not whole.admit("acme", limits, 0.0, 900).allowed
    whole.settle("acme", limits, 0.0, reserved=900, used=100)  # the answer was short: 800 tokens come back
    whole.flush()
    assert whole.admit("acme", limits, 0.0, 800).allowed
    proxy.cut()
    admitted = sum(cut.admit("acme", limits, float(i) * 0.001, 1).allowed for i in range(30))
    assert not cut.up and cut.fallbacks == 30
    assert admitted == 10, "cut off, one gateway of three admits a third of the rpm limit, never the whole"


def test_the_outbox_keeps_order_while_redis_is_unreachable_and_fenced_rows_need_the_lease(
        server: RedisServer, tmp_path: Path) -> None:
    proxy = CutProxy(server.port)
    state = RedisState(proxy.url, "t", timeout_s=0.5)
    store = RedisStore(state, tmp_path / "ebbtide.db")
    store.upsert_replica("p-1", "p", "ready", "http://x", {}, 1.0)
    assert store.pending() == 0 and store.replicas() == [], "a follower writes no registry row"
    lease, _ = state.claim("me", 30)
    store.term = ("me", lease.token)  # type: ignore[union-attr]
    proxy.cut()
    for i in range(5):
        store.add_event(float(i), "p", None, "kind", f"event {i}")
    store.upsert_replica("p-1", "p", "ready", "http://x", {"pid": 1}, 1.0, 2.0)
    assert store.flush() == 0 and store.pending() == 6
    assert [e["detail"] for e in store.events()] == [f"event {i}" for i in range(5)], "local fallback read"
    proxy.heal()
    assert wait_until(lambda: store.flush() == 6, 10, "the outbox flushed after the partition healed")
    assert [e["detail"] for e in RedisStore(RedisState(server.url, "t"), tmp_path / "x").events()] == [
        f"event {i}" for i in range(5)]
    assert RedisState(server.url, "t").replica_rows()[0]["handle"] == {"pid": 1}
    store.add_decision(ScaleDecision("p", 5.0, 1, 2, (), 1, 3, "config", notes=("n",)))
    store.flush()
    row = RedisStore(RedisState(server.url, "t"), tmp_path / "x").decisions(pool="p")[0]
    assert (row["current"], row["desired"], row["direction"], row["notes"]) == (1, 2, "out", ["n"])
