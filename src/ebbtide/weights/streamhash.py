"""Write a byte stream into a file while a second thread hashes it: one pass over the bytes, no re-read.

``hashlib`` releases the GIL while it hashes a large buffer, so the hashing thread runs while the reading thread
waits on the network and writes; the queue between them is bounded (``DEPTH`` chunks), so memory stays at a
few chunks whatever the file size. Once a chunk is hashed, the same thread asks the kernel to start writing it
to disk (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait), so the ``fdatasync`` that
commits the file finds little left to flush.

Usage: ``written, digest = copy_and_hash(read, fd, offset=0)`` with ``read(n) -> bytes`` (empty at the end).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import queue
import threading
from collections.abc import Callable

__all__ = ["CHUNK_BYTES", "DEPTH", "copy_and_hash", "start_writeback"]

CHUNK_BYTES = 8 << 20
DEPTH = 4
_SYNC_FILE_RANGE_WRITE = 2
_END = (-1, b"")


def _libc_sync_file_range() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _libc_sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` dirty bytes at ``offset`` to disk without waiting (no-op where unsupported)."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def copy_and_hash(read: Callable[[int], bytes], fd: int, offset: int = 0,
                  chunk_bytes: int = CHUNK_BYTES) -> tuple[int, str]:  # fmt: skip
    """Copy ``read``'s stream into ``fd`` from ``offset`` (``pwrite``), hashing it in a thread: (bytes, sha256)."""
    hasher = hashlib.sha256()
    chunks: queue.Queue[tuple[int, bytes]] = queue.Queue(maxsize=DEPTH)
    failed: list[BaseException] = []

    def hash_chunks() -> None:
        try:
            while (item := chunks.get()) is not _END:
                at, chunk = item
                hasher.update(chunk)
                start_writeback(fd, at, len(chunk))
        except BaseException as exc:  # surfaced to the caller below
            failed.append(exc)
            while chunks.get() is not _END:  # keep draining so the reader never blocks on a full queue
                pass

    thread = threading.Thread(target=hash_chunks, name="sha256", daemon=True)
    thread.start()
    written = 0
    try:
        while chunk := read(chunk_bytes):
            view = memoryview(chunk)
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + written + done)
            chunks.put((offset + written, chunk))
            written += len(chunk)
    finally:
        chunks.put(_END)
        thread.join()
    if failed:
        raise failed[0]
    return written, hasher.hexdigest()
