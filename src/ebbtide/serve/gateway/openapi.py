"""OpenAPI 3 description of the gateway's public API (used by clients and by the schemathesis fuzz suite)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"}},
        }
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant"]}, "content": {"type": "string"}},
}
_COMMON = {
    "model": {"type": "string", "minLength": 1},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 64},
    "stream": {"type": "boolean"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
}


def _op(body: dict[str, Any], summary: str) -> dict[str, Any]:
    errors = {str(c): {"description": d, "content": {"application/json": {"schema": _ERROR}}}
              for c, d in ((400, "bad request"), (404, "unknown model"), (413, "body too large"),
                           (415, "wrong content type"), (429, "queue full"), (503, "no capacity in deadline"))}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "completion (JSON, or SSE when stream is true)"}, **errors},
        }
    }


def openapi_document() -> dict[str, Any]:
    chat = {"type": "object", "required": ["model", "messages"],
            "properties": {**_COMMON, "messages": {"type": "array", "minItems": 1, "items": _MESSAGE}}}
    completion = {"type": "object", "required": ["model", "prompt"],
                  "properties": {**_COMMON, "prompt": {"type": "string"}}}
    ok = {"200": {"description": "ok"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "ebbtide gateway", "version": "0.1.0"},
        "paths": {
            "/v1/chat/completions": _op(chat, "OpenAI chat completion (passthrough to a replica)"),
            "/v1/completions": _op(completion, "OpenAI text completion (passthrough to a replica)"),
            "/v1/models": {"get": {"summary": "pools served", "responses": ok}},
            "/healthz": {"get": {"summary": "process alive", "responses": ok}},
            "/readyz": {"get": {"summary": "a replica is ready or can be started",
                                "responses": {**ok, "503": {"description": "not ready"}}}},
        },
    }
