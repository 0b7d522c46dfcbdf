"""Weights over HTTP(S): parallel ranged GETs into one ``.part`` file, resumable across attempts and processes.

The probe asks for ``Range: bytes=0-0``: a ``206`` with ``Content-Range: bytes 0-0/SIZE`` means ranges work (and
gives the size); a ``200`` means the server ignores ranges, and the file then comes in one stream that restarts
from zero when cut. With ranges the file is split into segments fetched by a few threads; each segment's
progress is kept (in memory, and in ``<sha256>.part.json`` every few MB) so a dropped connection, a later attempt
or a new process continues each segment at its first missing byte. Every ranged answer must be a ``206`` whose
``Content-Range`` is exactly the range asked for, else the bytes are not written.

The expected sha256 can come from ``<url>.sha256`` (``sha256sum`` format: the digest first). Redirects are
followed (the probe's final URL is used for the segments); proxies come from the usual ``*_proxy`` variables.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ebbtide.weights.cache import WeightsCache
from ebbtide.weights.fetch import Fetched, FetchError, PermanentFetchError, Probe
from ebbtide.weights.hashing import PrefixHasher
from ebbtide.weights.sources import check_sha256

__all__ = ["HttpFetcher"]

SEGMENT_BYTES = 32 << 20
CONCURRENCY = 4
READ_BYTES = 1 << 20
SEGMENT_FAILURES = 5  # consecutive failures of one segment without progress before the attempt gives up
SAVE_PROGRESS_EVERY_BYTES = 8 << 20
_PERMANENT = {400, 401, 403, 404, 405, 410, 451}


class HttpFetcher:
    """Usage: ``HttpFetcher("https://host/model.gguf")``; tests shrink ``segment_bytes`` to exercise many segments."""

    def __init__(
        self,
        url: str,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        concurrency: int = CONCURRENCY,
        timeout_s: float = 30.0,
        backoff_s: float = 0.2,
    ) -> None:
        self.source = url
        self.segment_bytes = segment_bytes
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._final_url = url

    def probe(self) -> Probe:
        with self._open(self.source, "bytes=0-0") as resp:
            self._final_url = resp.geturl()
            if resp.status == 206:
                size = _content_range_total(resp.headers.get("Content-Range"), self.source)
                resumable = True
            else:
                size = _content_length(resp, self.source)
                resumable = False
        return Probe(size, resumable)

    def fetch(self, cache: WeightsCache, sha256: str, probe: Probe) -> Fetched:
        cache.partial_dir.mkdir(parents=True, exist_ok=True)
        if not probe.resumable:
            cache.discard_partial(sha256)
            return self._fetch_whole(cache.part_path(sha256), probe.size_bytes)
        return _RangedDownload(self, cache, sha256, probe.size_bytes).run()

    def _open(self, url: str, byte_range: str | None) -> http.client.HTTPResponse:
        headers = {"Range": byte_range} if byte_range else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            exc.close()
            error = PermanentFetchError if exc.code in _PERMANENT else FetchError
            raise error(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise FetchError(f"{url}: {reason}") from None
        return response

    def published_sha256(self) -> str | None:
        url = f"{self.source}.sha256"
        try:
            with self._open(url, None) as resp:
                text = resp.read(4096).decode("ascii", errors="replace")
        except PermanentFetchError:
            return None
        first = text.split()[0] if text.split() else ""
        try:
            return check_sha256(first)
        except ValueError:
            raise PermanentFetchError(
                f"{url}: not a sha256 (expected 64 hex digits first, got {first[:80]!r})"
            ) from None

    def _fetch_whole(self, part: Path, size: int) -> Fetched:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, size)  # sized up front: writes into it measured ~2x faster than appends
        hasher = PrefixHasher(fd)
        pos = 0
        try:
            with self._open(self._final_url, None) as resp:
                pos = _copy_body(resp, fd, 0, size, hasher)
            return Fetched(hasher.finish(size), pos, 0)
        finally:
            os.close(fd)

    def _fetch_range(
        self, fd: int, hasher: PrefixHasher, start: int, end: int, size: int, on_progress: Callable[[int], None]
    ) -> int:
        """Bytes ``[start, end)`` into ``fd``; returns how far it got (raises FetchError when cut short)."""
        wanted = f"bytes {start}-{end - 1}/{size}"
        with self._open(self._final_url, f"bytes={start}-{end - 1}") as resp:
            got = resp.headers.get("Content-Range")
            if resp.status != 206 or got != wanted:
                raise FetchError(f"{self.source}: asked for {wanted}, got HTTP {resp.status} Content-Range {got!r}")
            return _copy_body(resp, fd, start, end, hasher, on_progress)


def _copy_body(
    resp: http.client.HTTPResponse,
    fd: int,
    start: int,
    end: int,
    hasher: PrefixHasher,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Stream the body into ``fd`` at ``start``..``end``; ``_Cut`` (with how far it got) when it ends early."""
    buffer = bytearray(READ_BYTES)
    view = memoryview(buffer)
    pos = start
    while pos < end:
        try:
            n = resp.readinto(view[: min(READ_BYTES, end - pos)])
        except (OSError, http.client.HTTPException) as exc:
            raise _Cut(pos, f"connection lost at byte {pos} (wanted up to {end}): {exc!r}") from None
        if n == 0:
            raise _Cut(pos, f"body ended at byte {pos}, expected {end} (truncated)")
        os.pwrite(fd, view[:n], pos)
        hasher.wrote(pos, n, view[:n])
        pos += n
        if on_progress is not None:
            on_progress(pos)
    return pos


class _Cut(FetchError):
    """A body that stopped early; ``reached`` is the first byte not received."""

    def __init__(self, reached: int, message: str) -> None:
        super().__init__(message)
        self.reached = reached


class _RangedDownload:
    """One attempt at a resumable download: segments on a thread pool, progress kept for the next attempt."""

    def __init__(self, fetcher: HttpFetcher, cache: WeightsCache, sha256: str, size: int) -> None:
        self.fetcher = fetcher
        self.size = size
        self.part = cache.part_path(sha256)
        self.progress_path = cache.progress_path(sha256)
        step = fetcher.segment_bytes
        self.segments = [(s, min(s + step, size)) for s in range(0, size, step)]
        self.done = self._load_progress()
        self.lock = threading.Lock()
        self.saved_at = list(self.done)
        self.failed = threading.Event()

    def run(self) -> Fetched:
        resumed = sum(self.done)
        fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if resumed == 0:
                os.ftruncate(fd, 0)
            os.ftruncate(fd, self.size)
            hasher = PrefixHasher(fd)
            for (start, _), done in zip(self.segments, self.done, strict=True):
                hasher.wrote(start, done)  # bytes from an earlier attempt: hashed by reading them back
            pending = [i for i, (s, e) in enumerate(self.segments) if s + self.done[i] < e]
            try:
                with ThreadPoolExecutor(max(1, min(self.fetcher.concurrency, len(pending)))) as pool:
                    for future in [pool.submit(self._segment_or_stop, fd, hasher, i) for i in pending]:
                        future.result()
            finally:
                self._save_progress()
            return Fetched(hasher.finish(self.size), sum(self.done) - resumed, resumed)
        finally:
            os.close(fd)

    def _segment_or_stop(self, fd: int, hasher: PrefixHasher, i: int) -> None:
        try:
            self._segment(fd, hasher, i)
        except BaseException:
            self.failed.set()  # the other segments stop after their current request
            raise

    def _segment(self, fd: int, hasher: PrefixHasher, i: int) -> None:
        start, end = self.segments[i]

        def progress(pos: int) -> None:
            self._advance(i, pos - start)

        failures = 0
        while start + self.done[i] < end:
            if self.failed.is_set():
                return  # another segment gave up: this attempt is over
            before = self.done[i]
            try:
                self.fetcher._fetch_range(fd, hasher, start + before, end, self.size, progress)
            except _Cut as cut:
                self._advance(i, cut.reached - start)
                error: FetchError = cut
            except PermanentFetchError:
                raise
            except FetchError as exc:
                error = exc
            else:
                self._advance(i, end - start)
                return
            failures = 0 if self.done[i] > before else failures + 1
            if failures >= SEGMENT_FAILURES:
                raise FetchError(f"{error} ({failures} tries in a row without progress)")
            time.sleep(min(self.fetcher.backoff_s * 2 ** failures, 5.0))

    def _advance(self, i: int, done: int) -> None:
        with self.lock:
            self.done[i] = done
            if done - self.saved_at[i] >= SAVE_PROGRESS_EVERY_BYTES:
                self._save_progress_locked()

    def _load_progress(self) -> list[int]:
        fresh = [0] * len(self.segments)
        try:
            saved = json.loads(self.progress_path.read_text())
            if saved["size"] != self.size or saved["segments"] != [list(s) for s in self.segments]:
                return fresh
            done = [int(d) for d in saved["done"]]
        except (OSError, ValueError, KeyError, TypeError):
            return fresh
        if not self.part.is_file() or self.part.stat().st_size != self.size:
            return fresh
        return [max(0, min(d, e - s)) for d, (s, e) in zip(done, self.segments, strict=True)]

    def _save_progress(self) -> None:
        with self.lock:
            self._save_progress_locked()

    def _save_progress_locked(self) -> None:
        record = {"size": self.size, "segments": [list(s) for s in self.segments], "done": self.done}
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.progress_path)
        self.saved_at = list(self.done)


def _content_range_total(header: str | None, url: str) -> int:
    total = (header or "").rpartition("/")[2]
    if not total.isdigit():
        raise FetchError(f"{url}: 206 without a usable Content-Range ({header!r})")
    return int(total)


def _content_length(resp: http.client.HTTPResponse, url: str) -> int:
    length = resp.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise PermanentFetchError(f"{url}: the server sends no Content-Length and no ranges; the size is unknown")
    with contextlib.suppress(OSError):
        resp.close()
    return int(length)
