"""sha256 of a file written out of order by parallel ranged downloads, computed while it downloads.

A hash must see the bytes in order, but parallel parts land in any order. :class:`PrefixHasher` hashes each
write at once when it extends the complete prefix (from memory, no re-read) and keeps later writes as byte
ranges, which it reads back from the file (the page cache) as soon as the prefix reaches them. So verification
costs about one pass of sha256 overlapped with the download, and memory stays bounded whatever the order.

A write over bytes already hashed (a retried part re-sending a range) marks the hash dirty: ``finish`` then
re-hashes the whole file, which is slow but never wrong.
"""

from __future__ import annotations

import hashlib
import os
import threading

__all__ = ["PrefixHasher", "hash_file"]

_READ_BYTES = 8 << 20


def hash_file(fd: int, size: int) -> str:
    """sha256 of the first ``size`` bytes of the open file ``fd``."""
    hasher = hashlib.sha256()
    _hash_range(hasher, fd, 0, size)
    return hasher.hexdigest()


def _hash_range(hasher: hashlib._Hash, fd: int, start: int, end: int) -> None:
    buffer = bytearray(min(_READ_BYTES, max(1, end - start)))
    view = memoryview(buffer)
    pos = start
    while pos < end:
        n = os.preadv(fd, [view[: min(len(buffer), end - pos)]], pos)
        if n == 0:
            raise EOFError(f"file ends at byte {pos}, expected {end}")
        hasher.update(view[:n])
        pos += n


class PrefixHasher:
    """Thread-safe. Usage: after each ``os.pwrite(fd, data, offset)`` call ``wrote(offset, len(data), data)``;
    ``finish(size)`` returns the hex digest of the file's first ``size`` bytes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._hasher = hashlib.sha256()
        self._hashed = 0  # every byte before this offset has been hashed, in order
        self._by_start: dict[int, int] = {}  # written but not yet hashed: start -> end
        self._by_end: dict[int, int] = {}
        self._dirty = False
        self._lock = threading.Lock()

    @property
    def hashed_bytes(self) -> int:
        return self._hashed

    def wrote(self, offset: int, length: int, data: memoryview | bytes | None = None) -> None:
        """``length`` bytes are now in the file at ``offset``; ``data`` is them, when the caller still has them."""
        if length <= 0:
            return
        with self._lock:
            if offset < self._hashed:
                self._dirty = True
                return
            if offset == self._hashed and data is not None:
                self._hasher.update(data)
                self._hashed += length
            else:
                self._add_range(offset, offset + length)
            self._drain()

    def finish(self, size: int) -> str:
        """The digest once ``size`` bytes are written; EOFError when the file is shorter (a truncated download)."""
        with self._lock:
            self._drain()
            if self._dirty or self._by_start or self._hashed > size:
                return hash_file(self._fd, size)
            _hash_range(self._hasher, self._fd, self._hashed, size)
            self._hashed = size
            return self._hasher.hexdigest()

    def _add_range(self, start: int, end: int) -> None:
        if start in self._by_start:  # the same range written twice (a retry): only a full re-hash is safe
            self._dirty = True
            end = max(end, self._by_start.pop(start))
            self._by_end = {e: s for s, e in self._by_start.items()}
        if start in self._by_end:
            start = self._by_end.pop(start)
            del self._by_start[start]
        if end in self._by_start:
            following_end = self._by_start.pop(end)
            del self._by_end[following_end]
            end = following_end
        self._by_start[start] = end
        self._by_end[end] = start

    def _drain(self) -> None:
        while self._hashed in self._by_start:
            end = self._by_start.pop(self._hashed)
            del self._by_end[end]
            _hash_range(self._hasher, self._fd, self._hashed, end)
            self._hashed = end
