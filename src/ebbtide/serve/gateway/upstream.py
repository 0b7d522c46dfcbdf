"""The gateway's hot path to replicas: pooled keep-alive HTTP/1.1 connections on asyncio protocols.

aiohttp's client builds a request object, a timer context and a connector lease per call; on a 2-core machine
that was ~0.2-0.3 ms of the gateway's added latency. A replica speaks HTTP/1.1 (plain on loopback or a private
network, TLS for a remote OpenAI-compatible URL), so a protocol per connection with httptools' parser (the one
uvicorn uses) does the same job for a fraction of that. Health checks, metrics scrapes and shadow mirrors keep
using aiohttp.

A pooled connection that closes before any response byte is retried once on a fresh connection: the replica
may have closed it while it idled (a timeout is not retried). Anything else surfaces as ``UpstreamError`` for
the proxy's retry-elsewhere logic.

The proxy depends only on the ``Upstream`` / ``UpstreamReply`` protocols, so a test can answer in-process.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

from ebbtide.serve.clock import Clock, WallClock

__all__ = ["Upstream", "UpstreamClient", "UpstreamError", "UpstreamReply", "UpstreamResponse"]

Target = tuple[str, str, int]  # scheme, host, port

IDLE_S = 4.0
HIGH_WATER = 256 * 1024


class UpstreamError(Exception):
    """The connection failed or the response was malformed. ``started``: some of the response had arrived;
    ``dropped``: the connection closed before any of it (on a reused connection: the replica closed it idle)."""

    def __init__(self, message: str, started: bool = False, dropped: bool = False) -> None:
        super().__init__(message)
        self.started = started
        self.dropped = dropped


class UpstreamReply(Protocol):
    """A replica's answer as the proxy reads it: the head at once, the body whole (``read``) or in chunks."""

    status: int
    content_type: str

    @property
    def complete(self) -> bool: ...

    async def read(self) -> bytes: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class Upstream(Protocol):
    """POSTs a body to a replica URL and returns once the response head arrived (``UpstreamError`` if not)."""

    async def post(self, url: str, body: bytes, timeout_s: float) -> UpstreamReply: ...

    def close(self) -> None: ...


class UpstreamResponse:
    """Status, content type and a body that arrives as chunks; read it whole or iterate over it."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = 0
        self.content_type = ""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    @property
    def complete(self) -> bool:
        """The whole body has arrived and been handed out: the chunk just yielded was the last."""
        return self._done and self._error is None and not self._chunks

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                # Everything that arrived since the last step goes on as one write: one syscall, not one per event.
                chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                self._conn.resume()
                yield chunk
            elif self._error is not None:
                raise self._error
            elif self._done:
                return
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter

    def release(self) -> None:
        """Done with the response: its connection goes back to the pool if it finished cleanly, else closes."""
        if self.timer is not None:
            self.timer.cancel()
        self._conn.finish(self._done and self._error is None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._conn.pause_if_full(self._buffered)
        self._wake()

    def _end(self, error: UpstreamError | None) -> None:
        if error is not None and self._error is None and not self._done:
            self._error = error
        self._done = True
        self._wake()


class _Connection(asyncio.Protocol):
    def __init__(self, client: UpstreamClient, key: Target) -> None:
        self._client = client
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._response: UpstreamResponse | None = None
        self._head: asyncio.Future[None] | None = None
        self._header_name = b""
        self._keep_alive = False
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed response from {self._where()}: {exc}", self._started()))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._client._forget(self)
        started = self._started()
        self._fail(UpstreamError(f"connection to {self._where()} lost: {exc or 'closed by peer'}", started,
                                 dropped=not started))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            assert self._response is not None
            self._response.content_type = value.decode("latin-1").split(";")[0].strip()

    def on_headers_complete(self) -> None:
        assert self._response is not None and self._head is not None
        self._response.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        assert self._response is not None
        self._response._feed(body)

    def on_message_complete(self) -> None:
        assert self._response is not None
        self._response._end(None)

    # used by the client and the response
    def start(self, request: bytes) -> tuple[UpstreamResponse, asyncio.Future[None]]:
        assert self.transport is not None
        self._response = UpstreamResponse(self)
        self._head = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._response, self._head

    def finish(self, clean: bool) -> None:
        response, self._response, self._head = self._response, None, None
        if clean and self._keep_alive and not self.closed and response is not None:
            self.resume()
            self._client._put_back(self)
        else:
            self.close()

    def pause_if_full(self, buffered: int) -> None:
        if buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def expire(self, timeout_s: float) -> None:
        self._fail(UpstreamError(f"no complete answer from {self._where()} within {timeout_s:g} s", self._started()))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()

    def _started(self) -> bool:
        return self._head is not None and self._head.done()

    def _fail(self, error: UpstreamError) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self._response is not None:
            self._response._end(error)

    def _where(self) -> str:
        return f"{self.key[0]}://{self.key[1]}:{self.key[2]}"


class UpstreamClient:
    """POSTs JSON to replicas over pooled connections, one request at a time per connection."""

    def __init__(self, connect_timeout_s: float = 5.0, clock: Clock | None = None) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock or WallClock()
        self._idle: dict[Target, list[_Connection]] = {}
        self._targets: dict[str, tuple[Target, bytes]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, timeout_s: float) -> UpstreamResponse:
        """Sends the request and waits for the response head; the caller must ``release()`` the response."""
        key, head = self._target(url)
        request = head + str(len(body)).encode() + b"\r\n\r\n" + body
        idle = self._idle_connection(key)
        if idle is not None:
            try:
                return await self._exchange(idle, request, timeout_s)
            except UpstreamError as exc:
                if not exc.dropped:
                    raise
        return await self._exchange(await self._connect(key), request, timeout_s)

    @staticmethod
    async def _exchange(conn: _Connection, request: bytes, timeout_s: float) -> UpstreamResponse:
        response, got_head = conn.start(request)
        response.timer = asyncio.get_running_loop().call_later(timeout_s, conn.expire, timeout_s)
        try:
            await got_head
        except UpstreamError:
            response.release()
            raise
        return response

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _target(self, url: str) -> tuple[Target, bytes]:
        cached = self._targets.get(url)
        if cached is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or parts.hostname is None:
                raise UpstreamError(f"{url}: a replica URL must be http:// or https://")
            key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                    "Connection: keep-alive\r\nContent-Length: ").encode()
            cached = self._targets[url] = (key, head)
        return cached

    def _idle_connection(self, key: Target) -> _Connection | None:
        conns = self._idle.get(key)
        now = self._clock.monotonic()
        while conns:
            conn = conns.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            conn.close()
        return None

    async def _connect(self, key: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        scheme, host, port = key
        tls = None
        if scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(lambda: _Connection(self, key), host, port, ssl=tls)
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {scheme}://{host}:{port}: {exc!r}") from None
        return conn

    def _forget(self, conn: _Connection) -> None:
        """A closed connection leaves the pool at once, so stopped replicas leave no entries behind."""
        conns = self._idle.get(conn.key)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self._idle[conn.key]

    def _put_back(self, conn: _Connection) -> None:
        conn.idle_since = self._clock.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
