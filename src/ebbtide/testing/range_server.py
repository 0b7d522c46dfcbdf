"""A local HTTP file server with byte ranges and injectable faults, for the weight-staging tests and benchmark.

Usage::

    with RangeServer({"/tiny.gguf": path, "/tiny.gguf.sha256": b"<hex>  tiny.gguf\\n"}) as server:
        server.add_fault("/tiny.gguf", Fault("drop", after_bytes=4096))
        url = server.url("/tiny.gguf")
        ...
        server.requests  # every request: method, path, Range header, status, body bytes sent

Faults are consumed one per GET of their path, in order, skipping GETs whose body is shorter than the
fault's ``min_body_bytes`` (so the one-byte probe a client sends to learn the size passes untouched) and the
first ``skip`` GETs that would match: ``corrupt`` flips one byte in the middle of the body, ``drop`` closes
the connection after ``after_bytes`` bytes of body while the headers promised the whole range (the client
sees a truncated body), ``status`` answers ``status`` with an empty body, ``ignore_range`` answers that one
request with the whole file and 200. ``ranges=False`` ignores Range headers and always sends the whole
file with 200, as some static servers do. Binds 127.0.0.1 on a port the OS picks.
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = ["Fault", "RangeServer", "RequestRecord"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Fault:
    kind: Literal["corrupt", "drop", "status", "ignore_range"]
    after_bytes: int = 0
    status: int = 503
    min_body_bytes: int = 2
    skip: int = 0


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class RangeServer:
    """Serves ``files`` (URL path → bytes or file) over HTTP/1.0 on 127.0.0.1; a context manager."""

    def __init__(self, files: dict[str, bytes | Path], *, ranges: bool = True) -> None:
        self.files = dict(files)
        self.ranges = ranges
        self._records: list[RequestRecord] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="range-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add_fault(self, path: str, fault: Fault) -> None:
        with self._lock:
            self._faults[path].append(fault)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, in completion order, once none is still being answered.

        A client may read a whole response before the server thread that sent it has recorded it; waiting for
        the in-flight ones keeps a test that checks right after its download from missing the last request.
        """
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=30)
            return list(self._records)

    def gets(self, path: str) -> list[RequestRecord]:
        """The GET requests of ``path`` so far."""
        return [r for r in self.requests if r.method == "GET" and r.path == path]

    def start(self) -> RangeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _next_fault(self, path: str, body_bytes: int) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            if not queue or body_bytes < queue[0].min_body_bytes:
                return None
            if queue[0].skip > 0:
                queue[0] = replace(queue[0], skip=queue[0].skip - 1)
                return None
            return queue.popleft()

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | Literal["bad"] | None:
    """``(first, last)`` inclusive, ``None`` for no (or an ignorable) Range, ``"bad"`` when unsatisfiable."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix: the last N bytes
        count = int(last_s)
        return (max(0, size - count), size - 1) if count else "bad"
    first = int(first_s)
    last = min(int(last_s), size - 1) if last_s else size - 1
    return (first, last) if first <= last else "bad"


def _handler_class(server: RangeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read .requests
            return

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            server._begin()
            try:
                self._serve(head=head)
            finally:
                server._end()

        def _serve(self, *, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            source = server.files.get(path)
            range_header = self.headers.get("Range")
            if source is None:
                self._empty(404, path, range_header)
                return
            size = len(source) if isinstance(source, bytes) else source.stat().st_size
            wanted = _parse_range(range_header, size) if server.ranges else None
            if wanted == "bad":
                self._empty(416, path, range_header, {"Content-Range": f"bytes */{size}"})
                return
            first, last = wanted if wanted is not None else (0, size - 1)
            fault = None if head else server._next_fault(path, last - first + 1)
            if fault is not None and fault.kind == "status":
                self._empty(fault.status, path, range_header)
                return
            if fault is not None and fault.kind == "ignore_range":
                wanted, first, last = None, 0, size - 1
            status = 206 if wanted is not None else 200
            self.send_response(status)
            self.send_header("Content-Length", str(last - first + 1))
            self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
            if status == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            sent = 0 if head else self._body(source, first, last, fault)
            server._record(RequestRecord(self.command, path, range_header, status, sent))

        def _empty(
            self, status: int, path: str, range_header: str | None, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            server._record(RequestRecord(self.command, path, range_header, status, 0))

        def _body(self, source: bytes | Path, first: int, last: int, fault: Fault | None) -> int:
            count = last - first + 1
            if fault is None and isinstance(source, Path):
                return self._sendfile(source, first, count)
            data = source[first : last + 1] if isinstance(source, bytes) else _read(source, first, count)
            if fault is not None and fault.kind == "corrupt" and data:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
            if fault is not None and fault.kind == "drop":
                data = data[: fault.after_bytes]
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return 0
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
            return len(data)

        def _sendfile(self, source: Path, first: int, count: int) -> int:
            sent = 0
            with open(source, "rb") as f:
                try:
                    while sent < count:
                        n = os.sendfile(self.connection.fileno(), f.fileno(), first + sent, count - sent)
                        if n == 0:
                            break
                        sent += n
                except (BrokenPipeError, ConnectionResetError):
                    pass
            return sent

    return Handler


def _read(path: Path, offset: int, count: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(count)
