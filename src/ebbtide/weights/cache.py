"""The node's content-addressed weights cache: verified blobs, partial downloads, room-making and LRU eviction.

Layout under the model cache (``EBBTIDE_MODEL_CACHE``, else ``~/.cache/ebbtide/models``)::

    blobs/sha256/<hex>          complete, sha256-verified, read-only; its mtime is its last use
    partial/<hex>.part          a download in progress (never loaded: only a verified rename makes a blob)
    partial/<hex>.part.json     per-segment progress of that download, for resuming it
    partial/<hex>.lock          held exclusively by the one process downloading <hex> on this node

Locks are ``flock`` locks, which the kernel drops when their holder dies, so a killed replica never leaves a
stale lock. Every process using a blob (a replica serving it, a stager finishing) holds a shared lock on it;
eviction only deletes a blob it can lock exclusively without waiting, so a blob in use is never evicted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ebbtide.weights.fetch import StageError

__all__ = [
    "FREE_SPACE_RESERVE_BYTES",
    "BlobHold",
    "CacheEntry",
    "InsufficientSpaceError",
    "WeightsCache",
    "cache_limit_from_env",
    "format_bytes",
    "warm_page_cache",
]

FREE_SPACE_RESERVE_BYTES = 128 << 20  # left free on the disk so the state DB and logs can still be written
LIMIT_ENV = "EBBTIDE_MODEL_CACHE_LIMIT_GB"


class InsufficientSpaceError(StageError):
    """The cache's disk cannot take the download, even after evicting unused blobs; the message has the numbers."""


def format_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def cache_limit_from_env() -> int | None:
    """``EBBTIDE_MODEL_CACHE_LIMIT_GB`` in bytes, or None (no limit) when unset or empty."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return None
    try:
        gb = float(raw)
    except ValueError:
        raise ValueError(f"{LIMIT_ENV} = {raw!r}: must be a number of gigabytes (e.g. 50)") from None
    if gb <= 0:
        raise ValueError(f"{LIMIT_ENV} = {raw!r}: must be > 0")
    return int(gb * 1e9)


@dataclass(frozen=True)
class CacheEntry:
    sha256: str
    path: Path
    size_bytes: int
    last_used: float  # epoch seconds (the blob's mtime)


class BlobHold:
    """A shared lock on one blob: while it is open, no eviction deletes the blob. ``close()`` is idempotent."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> BlobHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


class WeightsCache:
    """Usage: ``cache = WeightsCache(default_model_cache(), limit_bytes=50e9)``; see :func:`stage_weights`.

    ``free_bytes`` reports the free space of the cache's disk (a seam for tests); ``limit_bytes`` caps the total
    size of the blobs (None: only the disk's free space limits it).
    """

    def __init__(
        self, root: Path, *, limit_bytes: int | None = None, free_bytes: Callable[[Path], int] = _disk_free
    ) -> None:
        self.root = root
        self.limit_bytes = limit_bytes
        self.free_bytes = free_bytes
        self.blob_dir = root / "blobs" / "sha256"
        self.partial_dir = root / "partial"

    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256

    def part_path(self, sha256: str) -> Path:
        return self.partial_dir / f"{sha256}.part"

    def progress_path(self, sha256: str) -> Path:
        return self.partial_dir / f"{sha256}.part.json"

    def open_hit(self, sha256: str) -> BlobHold | None:
        """A held blob when ``sha256`` is cached (and marks it used now), else None."""
        path = self.blob_path(sha256)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            # An evictor may have unlinked the name between our open and our lock: then the blob is gone.
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)
        except FileNotFoundError:
            os.close(fd)
            return None
        with contextlib.suppress(OSError):  # read-only blobs owned by another user: LRU order just ages
            os.utime(path)
        return BlobHold(path, fd)

    @contextlib.contextmanager
    def download_lock(self, sha256: str) -> Iterator[None]:
        """Held while downloading ``sha256``: a second stager of the same blob on this node waits, then hits."""
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.partial_dir / f"{sha256}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def partial_bytes(self, sha256: str) -> int:
        """Bytes of ``sha256`` a previous attempt already wrote (allocated, for the free-space check)."""
        try:
            return os.stat(self.part_path(sha256)).st_blocks * 512
        except FileNotFoundError:
            return 0

    def discard_partial(self, sha256: str) -> None:
        for path in (self.part_path(sha256), self.progress_path(sha256)):
            path.unlink(missing_ok=True)

    def commit(self, sha256: str) -> Path:
        """Make the verified ``.part`` of ``sha256`` a blob: flushed to disk first, then renamed, read-only."""
        part = self.part_path(sha256)
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # a blob is trusted without re-hashing later, so its bytes must be on disk first
        finally:
            os.close(fd)
        part.chmod(0o444)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        target = self.blob_path(sha256)
        os.replace(part, target)
        self.progress_path(sha256).unlink(missing_ok=True)
        return target

    def entries(self) -> list[CacheEntry]:
        """The cached blobs, least recently used first."""
        found: list[CacheEntry] = []
        if not self.blob_dir.is_dir():
            return found
        for path in self.blob_dir.iterdir():
            if len(path.name) != 64:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                found.append(CacheEntry(path.name, path, st.st_size, st.st_mtime))
        return sorted(found, key=lambda e: (e.last_used, e.sha256))

    def make_room(self, sha256: str, size_bytes: int, source: str) -> list[CacheEntry]:
        """Evict unused blobs until ``size_bytes`` of ``sha256`` fit the limit and the disk; return the evicted.

        Raises InsufficientSpaceError (naming the numbers) when even that is not enough, and StageError when the
        blob alone exceeds the cache's size limit.
        """
        if self.limit_bytes is not None and size_bytes > self.limit_bytes:
            raise StageError(
                f"{source} is {format_bytes(size_bytes)}: larger than the weights cache limit "
                f"{format_bytes(self.limit_bytes)} (engine.cache_limit_gb or {LIMIT_ENV}); raise the limit"
            )
        missing = max(0, size_bytes - self.partial_bytes(sha256))
        self.root.mkdir(parents=True, exist_ok=True)
        evicted: list[CacheEntry] = []
        for entry in self.entries():
            if not self._needs_room(missing):
                break
            if entry.sha256 != sha256 and self._evict(entry):
                evicted.append(entry)
        free = self.free_bytes(self.root)
        if free < missing + FREE_SPACE_RESERVE_BYTES:
            raise InsufficientSpaceError(
                f"cannot stage {source} into {self.root}: {format_bytes(missing)} ({missing} bytes) still to "
                f"download, {format_bytes(free)} ({free} bytes) free on that disk, and "
                f"{format_bytes(FREE_SPACE_RESERVE_BYTES)} is kept free; evicting unused cached weights was not "
                "enough: free space, or point EBBTIDE_MODEL_CACHE at a larger disk"
            )
        return evicted

    def evict_to_limit(self, keep: str) -> list[CacheEntry]:
        """Evict least recently used unused blobs (never ``keep``) until the blobs fit ``limit_bytes``."""
        if self.limit_bytes is None:
            return []
        entries = self.entries()
        total = sum(e.size_bytes for e in entries)
        evicted: list[CacheEntry] = []
        for entry in entries:
            if total <= self.limit_bytes:
                break
            if entry.sha256 != keep and self._evict(entry):
                evicted.append(entry)
                total -= entry.size_bytes
        return evicted

    def _needs_room(self, incoming: int) -> bool:
        if self.free_bytes(self.root) < incoming + FREE_SPACE_RESERVE_BYTES:
            return True
        if self.limit_bytes is None:
            return False
        return sum(e.size_bytes for e in self.entries()) + incoming > self.limit_bytes

    @staticmethod
    def _evict(entry: CacheEntry) -> bool:
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False  # a running replica (or a stager) holds it
        try:
            entry.path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        return True


def warm_page_cache(path: Path, *, chunk_bytes: int = 8 << 20) -> float | None:
    """Read ``path`` once so the engine loads it from memory; the seconds it took, or None when skipped.

    Skipped when the file is larger than the memory available now: reading it would only push its own start
    out of the page cache again before the engine gets there.
    """
    import psutil

    if path.stat().st_size > psutil.virtual_memory().available:
        return None
    started = time.perf_counter()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while os.readv(fd, [view]) > 0:
            pass
    finally:
        os.close(fd)
    return time.perf_counter() - started
