"""What several gateways share, in Redis: the leader lease, the replica registry (fenced), signals, the decision
log and events, API keys and tenant quota buckets. Every multi-key rule runs in one Lua script, so it is atomic.

Keys (``{ns}`` = ``state.namespace``): ``{ns}:lease`` (hash holder/token, expires with the TTL),
``{ns}:lease:token`` (last token, never goes back), ``{ns}:replicas`` (hash id → JSON row), ``{ns}:replica:seq``,
``{ns}:desired`` (hash pool → JSON), ``{ns}:signals:{pool}`` (hash gateway → JSON), ``{ns}:events`` and
``{ns}:decisions`` (lists of ``"<id> <json>"``), ``{ns}:keys`` (hash key_id → JSON record), ``{ns}:keys:version``,
``{ns}:quota:{tenant}`` (bucket levels, expiring when idle).

Lease and quota time is Redis's own (``TIME`` in the scripts), so gateways' clocks need not agree.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from ebbtide.core.lease import Lease

__all__ = ["LOG_KEPT", "Deposed", "RedisState"]

LOG_KEPT = 100_000  # events and decisions kept in Redis (oldest trimmed)

_CLAIM = """
local holder = redis.call('HGET', KEYS[1], 'holder')
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {holder, redis.call('HGET', KEYS[1], 'token'), tostring(now + ARGV[2] / 1000), '0'}
end
if holder then
  return {holder, redis.call('HGET', KEYS[1], 'token'), tostring(now + redis.call('PTTL', KEYS[1]) / 1000), '0'}
end
if ARGV[3] ~= '1' then return {'', tostring(last), '0', '0'} end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {ARGV[1], tostring(token), tostring(now + ARGV[2] / 1000), '1'}
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] and redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
  redis.call('DEL', KEYS[1]) return 1 end
return 0
"""

# A registry or desired-count write lands only if (holder, token) is the live lease: the fence of every action.
_FENCED_HSET = """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""

_APPEND = """
local id = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], id .. ' ' .. ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return id
"""

# core/quota.py's check() and settle, on Redis time: a bucket holds a minute's allowance and refills at limit/60
# per second; a rejection charges nothing. An admission may also lease up to ARGV[5] more requests and ARGV[6]
# more tokens (only what is there): the gateway spends them locally and gives back what it did not use
# ('refund'). 'settle' moves the token bucket by ARGV[5] (used - reserved). Levels never exceed a full bucket.
_QUOTA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'rl', 'ra', 'tl', 'ta')
local function refill(level, at, limit)
  if not level then return limit, now end
  return math.min(limit, level + math.max(0, now - at) * limit / 60), math.max(now, at)
end
local rl, ra, tl, ta
if rpm > 0 then rl, ra = refill(tonumber(h[1]), tonumber(h[2]), rpm) end
if tpm > 0 then tl, ta = refill(tonumber(h[3]), tonumber(h[4]), tpm) end
local function store()
  if rpm > 0 then redis.call('HSET', KEYS[1], 'rl', tostring(rl), 'ra', tostring(ra)) end
  if tpm > 0 then redis.call('HSET', KEYS[1], 'tl', tostring(tl), 'ta', tostring(ta)) end
  redis.call('EXPIRE', KEYS[1], 120)
end
if ARGV[4] == 'settle' then
  if tpm > 0 and h[3] then tl = math.min(tpm, tl - tonumber(ARGV[5])); store() end
  return {'1', '0', '', '0', '0'}
end
if ARGV[4] == 'refund' then
  if rpm > 0 and h[1] then rl = math.min(rpm, rl + tonumber(ARGV[5])) end
  if tpm > 0 and h[3] then tl = math.min(tpm, tl + tonumber(ARGV[6])) end
  if h[1] or h[3] then store() end
  return {'1', '0', '', '0', '0'}
end
local wait, reason = 0, ''
if rpm > 0 and rl < 1 then wait = (1 - rl) * 60 / rpm; reason = 'over ' .. rpm .. ' requests/min' end
local need = 0
if tpm > 0 then need = math.min(tokens, tpm) end
if tpm > 0 and need > 0 and tl < need then
  local w = (need - tl) * 60 / tpm
  if w > wait then wait = w; reason = 'over ' .. tpm .. ' tokens/min' end
end
if reason ~= '' then return {'0', tostring(wait), reason, '0', '0'} end
local extra_r, extra_t = 0, 0
if rpm > 0 then
  extra_r = math.max(0, math.min(tonumber(ARGV[5]), math.floor(rl - 1)))
  rl = rl - 1 - extra_r
end
if tpm > 0 then
  extra_t = math.max(0, math.min(tonumber(ARGV[6]), math.floor(tl - tokens)))
  tl = tl - tokens - extra_t
end
store()
return {'1', '0', '', tostring(extra_r), tostring(extra_t)}
"""


class Deposed(Exception):
    """A fenced action was refused: this gateway's leader term is over (or Redis could not confirm it)."""


class RedisState:
    """Usage: ``rs = RedisState("redis://127.0.0.1:6379/0", "ebbtide")``; every method is one round trip."""

    def __init__(self, url: str, namespace: str = "ebbtide", timeout_s: float = 0.5) -> None:
        self.url = url
        self.ns = namespace
        self.client: redis.Redis = redis.Redis.from_url(  # decode_responses: every reply below is str
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=0,
            decode_responses=True,
        )
        self._claim = self.client.register_script(_CLAIM)
        self._release = self.client.register_script(_RELEASE)
        self._fenced_hset = self.client.register_script(_FENCED_HSET)
        self._append = self.client.register_script(_APPEND)
        self._quota = self.client.register_script(_QUOTA)

    def key(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    def close(self) -> None:
        self.client.close()

    def ping(self) -> bool:
        return bool(self.client.ping())

    # -- the lease -----------------------------------------------------------------------------------------

    def claim(self, who: str, ttl_s: float, may_lead: bool = True) -> tuple[Lease | None, bool]:
        """``core.lease.claim`` in Redis: (the live lease or None, whether ``who`` just took it)."""
        holder, token, expires, took = self._claim(
            keys=[self.key("lease"), self.key("lease", "token")], args=[who, int(ttl_s * 1000), int(may_lead)])
        if not holder:
            return None, False
        return Lease(holder, int(token), float(expires)), took == "1"

    def release(self, who: str, token: int) -> bool:
        return bool(self._release(keys=[self.key("lease")], args=[who, str(token)]))

    # -- the registry (fenced) -----------------------------------------------------------------------------

    def fenced_put(self, who: str, token: int, table: str, items: dict[str, str]) -> bool:
        """HSET ``items`` into ``{ns}:{table}`` only if ``(who, token)`` holds the lease now."""
        args: list[str] = [who, str(token)]
        for field, value in items.items():
            args += [field, value]
        return bool(self._fenced_hset(keys=[self.key("lease"), self.key(table)], args=args))

    def replica_rows(self) -> list[dict[str, Any]]:
        rows = [json.loads(v) for v in self.client.hvals(self.key("replicas"))]
        rows.sort(key=lambda r: (r["requested_at"], r["replica_id"]))
        return rows

    def drop_replicas(self, replica_ids: list[str]) -> bool:
        if replica_ids:
            self.client.hdel(self.key("replicas"), *replica_ids)
        return True

    def next_replica_number(self) -> int:
        return int(self.client.incr(self.key("replica", "seq")))

    def desired(self) -> dict[str, dict[str, Any]]:
        return {str(pool): json.loads(v) for pool, v in self.client.hgetall(self.key("desired")).items()}

    # -- signals ---------------------------------------------------------------------------------------------

    def exchange_signals(self, gateway: str, mine: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Publish this gateway's per-pool signals and read everyone's: ``{pool: {gateway: signals}}``."""
        pipe = self.client.pipeline(transaction=False)
        for pool, data in mine.items():
            pipe.hset(self.key("signals", pool), gateway, json.dumps(data))
        for pool in mine:
            pipe.hgetall(self.key("signals", pool))
        replies = pipe.execute()[len(mine):]
        return {pool: {str(gw): json.loads(v) for gw, v in reply.items()}
                for pool, reply in zip(mine, replies, strict=True)}

    def forget_gateways(self, pool: str, gateways: list[str]) -> None:
        if gateways:
            self.client.hdel(self.key("signals", pool), *gateways)

    # -- decisions and events --------------------------------------------------------------------------------

    def append(self, log: str, row: dict[str, Any]) -> int:
        return int(self._append(keys=[self.key(log), self.key(log, "id")], args=[json.dumps(row), LOG_KEPT]))

    def read_log(self, log: str, since: float, pool: str | None, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` rows with ``at >= since`` (and of ``pool``), oldest first; reads newest-first in pages."""
        found: list[dict[str, Any]] = []
        end, page = -1, 500
        while len(found) < limit:
            chunk = self.client.lrange(self.key(log), end - page + 1, end)
            if not chunk:
                break
            for raw in reversed(chunk):
                ident, _, body = str(raw).partition(" ")
                row = json.loads(body)
                if row["at"] < since:
                    return list(reversed(found))
                if pool is None or row["pool"] == pool:
                    found.append({"id": int(ident), **row})
                    if len(found) >= limit:
                        break
            end -= page
        return list(reversed(found))

    # -- API keys --------------------------------------------------------------------------------------------

    def keys_version(self) -> int:
        return int(self.client.get(self.key("keys", "version")) or 0)

    def key_rows(self) -> tuple[int, dict[str, dict[str, Any]]]:
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.key("keys", "version"))
        pipe.hgetall(self.key("keys"))
        version, rows = pipe.execute()
        return int(version or 0), {k: json.loads(v) for k, v in rows.items()}

    def put_key(self, key_id: str, row: dict[str, Any], only_new: bool = False) -> bool:
        pipe = self.client.pipeline(transaction=True)
        (pipe.hsetnx if only_new else pipe.hset)(self.key("keys"), key_id, json.dumps(row))
        pipe.incr(self.key("keys", "version"))
        return bool(pipe.execute()[0]) or not only_new

    # -- tenant quotas ---------------------------------------------------------------------------------------

    def quota(self, tenant: str, rpm: int | None, tpm: int | None, tokens: int, lease_requests: int = 0,
              lease_tokens: int = 0) -> tuple[bool, float, str, int, int]:
        """Admit one request reserving ``tokens`` and lease up to the extra amounts: ``(allowed, retry_after_s,
        reason, requests leased, tokens leased)``."""
        ok, wait, reason, extra_r, extra_t = self._quota(
            keys=[self.key("quota", tenant)],
            args=[rpm or 0, tpm or 0, tokens, "admit", lease_requests, lease_tokens])
        return ok == "1", float(wait), reason, int(float(extra_r)), int(float(extra_t))

    def quota_settle(self, tenant: str, tpm: int, delta_tokens: int) -> None:
        self._quota(keys=[self.key("quota", tenant)], args=[0, tpm, 0, "settle", delta_tokens, 0])

    def quota_refund(self, tenant: str, rpm: int, tpm: int, requests: float, tokens: float) -> None:
        self._quota(keys=[self.key("quota", tenant)], args=[rpm, tpm, 0, "refund", requests, tokens])
