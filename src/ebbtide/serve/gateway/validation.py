"""Checks on an OpenAI request body before it is queued: cheap, strict where engines would misbehave."""

from __future__ import annotations

import json
from typing import Any

from ebbtide.serve.gateway.errors import ApiError

__all__ = ["parse_body"]


def parse_body(raw: bytes, kind: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_body")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` is required and must be a non-empty string", "missing_model", "model")
    if kind == "chat":
        _check_messages(payload.get("messages"))
    else:
        prompt = payload.get("prompt")
        if not isinstance(prompt, str | list) or (isinstance(prompt, list) and not prompt):
            raise ApiError(400, "`prompt` is required: a string or a non-empty list", "missing_prompt", "prompt")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ApiError(400, f"`{name}` = {value!r}: must be an integer >= 1", "invalid_value", name)
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"`stream` = {stream!r}: must be true or false", "invalid_value", "stream")
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise ApiError(400, f"`{name}` = {value!r}: must be a number >= 0", "invalid_value", name)
    return payload


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` is required: a non-empty list", "missing_messages", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, f"`messages[{i}]` must be an object with a string `role`", "invalid_value", "messages")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ApiError(400, f"`messages[{i}].content` must be a string or a list", "invalid_value", "messages")
