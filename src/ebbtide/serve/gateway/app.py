"""The gateway's HTTP surface: OpenAI endpoints, health, metrics and the admin API. ``create_app(runtime, token)``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from ebbtide.core.signals import ReplicaState
from ebbtide.dashboard.routes import install_dashboard
from ebbtide.serve.control.runtime import Runtime
from ebbtide.serve.gateway.admin import admin_routes
from ebbtide.serve.gateway.dispatch import dispatch
from ebbtide.serve.gateway.errors import ApiError, error_response
from ebbtide.serve.gateway.openapi import openapi_document
from ebbtide.serve.gateway.validation import parse_body

__all__ = ["RUNTIME", "create_app"]

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[RUNTIME].cfg.gateway.max_body_bytes
        return error_response(413, f"request body too large (limit {limit} bytes)", "body_too_large")
    except web.HTTPNotFound:
        return error_response(404, f"no route {request.method} {request.path}", "unknown_route")
    except web.HTTPMethodNotAllowed:
        return error_response(405, f"method {request.method} not allowed on {request.path}", "method_not_allowed")


def _completion_handler(kind: str, path: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME]
        caller = runtime.gatekeeper.caller(request)
        if request.content_type != "application/json":
            raise ApiError(415, f"Content-Type must be application/json, got {request.content_type!r}",
                           "unsupported_media_type")
        raw = await request.read()
        payload = parse_body(raw, kind)
        pr = runtime.pools.get(payload["model"])
        if pr is None:
            known = ", ".join(sorted(runtime.pools))
            raise ApiError(404, f"model {payload['model']!r} not found; served: {known}", "model_not_found", "model")
        return await dispatch(request, runtime, pr, caller, path, payload, raw)

    return handle


async def _models(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    created = int(runtime.clock.now())
    data = [{"id": name, "object": "model", "created": created, "owned_by": "ebbtide"} for name in runtime.pools]
    return web.json_response({"object": "list", "data": data})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    pools = {}
    for name, pr in runtime.pools.items():
        ready = sum(1 for r in pr.fleet.live_replicas() if r.state is ReplicaState.READY)
        pools[name] = {"ready": ready, "can_start": pr.controller.rules.max_replicas > 0}
    ok = all(p["ready"] > 0 or p["can_start"] for p in pools.values())
    return web.json_response({"ready": ok, "pools": pools}, status=200 if ok else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def _bearer_guard(token: str) -> Callable[[web.Request], None]:
    expected = f"Bearer {token}".encode()

    def check(request: web.Request) -> None:
        got = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(got, expected):
            raise ApiError(401, "admin API needs `Authorization: Bearer <admin token>`", "invalid_admin_token")

    return check


def create_app(runtime: Runtime, admin_token: str, dashboard_public: bool = False) -> web.Application:
    app = web.Application(middlewares=[_openai_errors], client_max_size=runtime.cfg.gateway.max_body_bytes)
    app[RUNTIME] = runtime
    app.router.add_post("/v1/chat/completions", _completion_handler("chat", "/v1/chat/completions"))
    app.router.add_post("/v1/completions", _completion_handler("completions", "/v1/completions"))
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_routes(admin_routes(runtime, _bearer_guard(admin_token)))
    install_dashboard(app, runtime, admin_token, dashboard_public)
    return app
