"""Admin API under ``/admin/api/`` (bearer token): state, replicas, decisions, events; scale, pause, resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ebbtide.core.controller import ScaleDecision
from ebbtide.serve.control.runtime import PoolRuntime, Runtime
from ebbtide.serve.control.store import StateStore
from ebbtide.serve.gateway.errors import ApiError

__all__ = ["admin_routes", "decision_dict"]

START_ROWS = 8


def decision_dict(d: ScaleDecision) -> dict[str, Any]:
    return {
        "at": d.at_s, "pool": d.pool, "current": d.current, "desired": d.desired, "direction": d.direction,
        "min_replicas": d.min_replicas, "max_replicas": d.max_replicas, "bounds_source": d.bounds_source,
        "blocked_by": d.blocked_by, "opinions": [asdict(o) for o in d.opinions], "notes": list(d.notes),
    }


def _pool_state(pr: PoolRuntime, store: StateStore) -> dict[str, Any]:
    return {
        "desired": pr.fleet.desired,
        "standby": {"tier": pr.fleet.standby.tier, "count": pr.fleet.standby.count},
        "paused": pr.paused,
        "queue_depth": pr.fleet.broker.queue_depth,
        "arrivals_total": pr.arrivals_total,
        "replicas": [
            {"id": r.replica_id, "state": r.state.value, "url": r.base_url, "inflight": r.inflight, "slots": r.slots,
             "requested_at": r.requested_at, "ready_at": r.ready_at, "variant": r.variant, "spot": r.spot,
             "standby": r.standby or r.parked}
            for r in pr.fleet.replicas.values()
        ],
        "starts": store.start_phases(pr.spec.name, limit=START_ROWS),  # the newest timed starts, by phase
        "last_decision": decision_dict(pr.last_decision) if pr.last_decision else None,
        "rollout": pr.rollout.summary() if pr.rollout is not None else None,
    }


def _shared_state(runtime: Runtime) -> dict[str, Any]:
    """Which backend, and with Redis: this gateway, the leader it knows, whether it leads and is connected."""
    c = runtime.coordinator
    if c is None:
        return {"backend": "sqlite", "leads": True}
    return {"backend": "redis", "gateway": c.me, "leader": c.leader, "leads": c.leads(), "token": c.token,
            "connected": c.connected, "gateways": c.live_gateways, "may_lead": c.may_lead}


def admin_routes(runtime: Runtime, guard: Callable[[web.Request], None]) -> list[web.RouteDef]:
    def pool_of(request: web.Request) -> PoolRuntime:
        name = request.match_info["pool"]
        if name not in runtime.pools:
            raise ApiError(404, f"pool {name!r} not found", "pool_not_found")
        return runtime.pools[name]

    def since(request: web.Request) -> float:
        try:
            return float(request.query.get("since", "0"))
        except ValueError:
            raise ApiError(400, "`since` must be a unix time in seconds", "invalid_value", "since") from None

    async def state(request: web.Request) -> web.Response:
        guard(request)
        return web.json_response({"pools": {n: _pool_state(p, runtime.store) for n, p in runtime.pools.items()},
                                  "state": _shared_state(runtime)})

    async def decisions(request: web.Request) -> web.Response:
        guard(request)
        rows = runtime.store.decisions(since(request), request.query.get("pool"))
        return web.json_response({"decisions": rows})

    async def events(request: web.Request) -> web.Response:
        guard(request)
        return web.json_response({"events": runtime.store.events(since(request), request.query.get("pool"))})

    async def scale(request: web.Request) -> web.Response:
        guard(request)
        pr = pool_of(request)
        try:
            body = json.loads(await request.read())
            replicas = int(body["replicas"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, 'body must be {"replicas": N}', "invalid_body") from None
        if not 0 <= replicas <= pr.spec.scaling.max_replicas:
            raise ApiError(400, f"replicas = {replicas}: must be in [0, {pr.spec.scaling.max_replicas}]",
                           "invalid_value", "replicas")
        pr.paused = True
        pr.fleet.set_desired(replicas)
        return web.json_response({"pool": pr.spec.name, "desired": replicas, "paused": True})

    async def preempt(request: web.Request) -> web.Response:
        guard(request)
        replica_id = request.match_info["replica"]
        raw = await request.read()
        try:
            notice = json.loads(raw).get("notice_s") if raw else None
            notice = None if notice is None else float(notice)
        except (ValueError, AttributeError, TypeError):
            raise ApiError(400, 'body must be {"notice_s": seconds} or empty', "invalid_body") from None
        for pr in runtime.pools.values():
            if pr.fleet.preempt(replica_id, notice):
                return web.json_response({"replica": replica_id, "preempted": True, "notice_s": notice})
        raise ApiError(404, f"no live replica {replica_id!r}", "replica_not_found")

    async def spot(request: web.Request) -> web.Response:
        guard(request)
        pr = pool_of(request)
        try:
            available = bool(json.loads(await request.read())["available"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, 'body must be {"available": true|false}', "invalid_body") from None
        pr.fleet.set_spot_available(available)
        return web.json_response({"pool": pr.spec.name, "spot_available": available})

    async def pause(request: web.Request) -> web.Response:
        guard(request)
        pr = pool_of(request)
        pr.paused = request.path.endswith("/pause")
        return web.json_response({"pool": pr.spec.name, "paused": pr.paused})

    return [
        web.get("/admin/api/state", state),
        web.get("/admin/api/decisions", decisions),
        web.get("/admin/api/events", events),
        web.post("/admin/api/pools/{pool}/scale", scale),
        web.post("/admin/api/pools/{pool}/pause", pause),
        web.post("/admin/api/pools/{pool}/spot", spot),
        web.post("/admin/api/replicas/{replica}/preempt", preempt),
        web.post("/admin/api/pools/{pool}/resume", pause),
    ]
