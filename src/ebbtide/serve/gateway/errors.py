"""OpenAI-shaped error responses: ``{"error": {"message", "type", "code"}}`` with the right status."""

from __future__ import annotations

import math

from aiohttp import web

__all__ = ["ApiError", "error_response"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.retry_after_s = (
            status, message, code, param, retry_after_s,
        )

    def response(self) -> web.Response:
        return error_response(self.status, self.message, self.code, self.param, self.retry_after_s)


def error_response(
    status: int, message: str, code: str, param: str | None = None, retry_after_s: float | None = None
) -> web.Response:
    headers = {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    body = {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)
