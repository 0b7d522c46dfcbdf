"""``GET /dashboard`` on the gateway's port: a read-only live view (HTML + vendored uPlot, no build step, no
CDN) and its JSON feed ``/dashboard/api/series?since=T``.

Access needs the admin token - as a bearer header, or ``?token=`` once, which sets an HttpOnly cookie and
redirects to a clean URL - unless serve runs with ``--dashboard-public``. ``install_dashboard(app, ...)`` adds
the routes and a 1 s sampling task tied to the app's startup/cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from aiohttp import web

from ebbtide.core.explain import explain
from ebbtide.dashboard.series import SeriesSampler, columns
from ebbtide.serve.control.phases import PHASES

__all__ = ["COOKIE", "dashboard_payload", "dashboard_routes", "install_dashboard"]

COOKIE = "ebbtide_dashboard"
LIST_LIMIT = 60
STARTS_LIMIT = 12
STATIC = {
    "uplot.min.js": "application/javascript",
    "uplot.min.css": "text/css",
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
}
SAMPLER: web.AppKey[SeriesSampler] = web.AppKey("dashboard_sampler", SeriesSampler)

_LOGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>ebbtide dashboard</title>
<link rel="icon" href="data:,"><body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>ebbtide dashboard</h1><p>This dashboard needs the gateway's admin token. Open
<code>/dashboard?token=&lt;token&gt;</code> once (the token is in <code>&lt;state-dir&gt;/admin-token</code>
or <code>$EBBTIDE_ADMIN_TOKEN</code>), or start serve with <code>--dashboard-public</code>.</p></body>"""


def asset(name: str) -> bytes:
    return resources.files("ebbtide.dashboard").joinpath("static", name).read_bytes()


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"ebbtide-dashboard", hashlib.sha256).hexdigest()


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "").encode()
    cookie = request.cookies.get(COOKIE, "").encode()
    return hmac.compare_digest(header, f"Bearer {token}".encode()) or hmac.compare_digest(
        cookie, _cookie_value(token).encode()
    )


def dashboard_payload(runtime: Any, sampler: SeriesSampler, since: float) -> dict[str, Any]:
    """What the page draws: new samples since ``since`` (wall s), and the latest decisions and events."""
    wall_now, policy_now = runtime.wall.now(), runtime.policy_clock.now()
    scale = runtime.policy_clock.scale
    decisions = [
        {"at": wall_now - (policy_now - d["at"]) / scale, "policy_at": d["at"], "pool": d["pool"],
         "direction": d["direction"], "text": explain(d)}
        for d in runtime.store.decisions(limit=LIST_LIMIT)
    ]
    events = [
        {k: e[k] for k in ("at", "pool", "replica_id", "kind", "detail")}
        for e in runtime.store.events(limit=LIST_LIMIT)
    ]
    starts = [
        {k: s[k] for k in ("at", "pool", "replica_id", "kind", "phases")}
        for s in runtime.store.start_phases(limit=STARTS_LIMIT)
    ]
    slo = runtime.cfg.slo
    return {
        "live": True, "now": wall_now, "policy_now": policy_now, "time_scale": scale,
        "slo": {"latency_p95_s": slo.latency_p95_s, "ttft_p95_s": slo.ttft_p95_s},
        "pools": columns(sampler.since(since)), "decisions": decisions, "events": events,
        "starts": starts, "phase_names": list(PHASES),
    }


def dashboard_routes(runtime: Any, token: str, public: bool, sampler: SeriesSampler) -> list[web.RouteDef]:
    def allowed(request: web.Request) -> bool:
        return public or _authorized(request, token)

    async def page(request: web.Request) -> web.StreamResponse:
        given = request.query.get("token")
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            resp = web.HTTPFound("/dashboard")
            resp.set_cookie(COOKIE, _cookie_value(token), httponly=True, samesite="Strict", path="/dashboard")
            return resp
        if not allowed(request):
            return web.Response(status=401, text=_LOGIN_PAGE, content_type="text/html")
        return web.Response(body=asset("index.html"), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=asset(name), content_type=STATIC[name],
                            headers={"Cache-Control": "max-age=300"})

    async def series(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.json_response(
                {"error": {"message": "dashboard needs the admin token", "type": "invalid_request_error",
                           "code": "invalid_admin_token"}}, status=401)
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            since = 0.0
        return web.json_response(dashboard_payload(runtime, sampler, since))

    return [
        web.get("/dashboard", page),
        web.get("/dashboard/static/{name}", static),
        web.get("/dashboard/api/series", series),
    ]


def install_dashboard(app: web.Application, runtime: Any, token: str, public: bool = False) -> None:
    """Routes plus a sampling task that lives as long as the app (no edit to the runtime's tick needed)."""
    sampler = SeriesSampler(runtime, runtime.store.path.parent)
    app[SAMPLER] = sampler
    app.router.add_routes(dashboard_routes(runtime, token, public, sampler))

    async def sampling(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(1.0)
                try:
                    sampler.sample()
                except Exception as exc:  # a failed sample is reported; sampling must go on
                    runtime.report("error", {"where": "dashboard sampler", "error": repr(exc)})

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sampler.close()

    app.cleanup_ctx.append(sampling)
