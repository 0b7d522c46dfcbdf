"""Schemathesis hooks for the fuzz test (loaded by ``SCHEMATHESIS_HOOKS``; never imported by pytest).

``after_call`` runs only once a case went out on the wire and its response came back, so the log it writes (one
JSON line per case: method, path, status, SHA-256 of the body bytes sent) counts what was really sent, not what
the run summary says was generated. ``map_body`` names the stub pool in half of the bodies that carry a string
``model`` (picked by a hash of that string, so the run stays reproducible with ``--seed``): otherwise almost
every generated case stops at the gateway's "unknown model" 404 and never reaches validation or the proxy path.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Any

import schemathesis

LOG_ENV = "EBBTIDE_FUZZ_LOG"
POOL_ENV = "EBBTIDE_FUZZ_POOL"


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    pool = os.environ[POOL_ENV]
    if isinstance(body, dict) and isinstance(body.get("model"), str) and zlib.crc32(body["model"].encode()) % 2:
        return {**body, "model": pool}
    return body


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    sent = response.request.body
    raw = sent if isinstance(sent, bytes) else (sent or "").encode()
    line = {"method": response.request.method, "path": response.request.path_url.split("?")[0],
            "status": response.status_code, "body_sha256": hashlib.sha256(raw).hexdigest()}
    with open(os.environ[LOG_ENV], "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")
