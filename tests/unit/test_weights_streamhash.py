"""streamhash: a stream lands in the file at its offset and its sha256 comes from a second thread, in one pass."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from ebbtide.weights.streamhash import copy_and_hash


def test_the_file_holds_the_stream_and_the_digest_is_its_sha256(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        written, digest = copy_and_hash(io.BytesIO(data).read, fd, offset=5, chunk_bytes=256 * 1024)
    finally:
        os.close(fd)
    assert written == len(data) and digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "out").read_bytes()[5:] == data


def test_a_read_that_fails_midway_raises_and_leaves_no_thread(tmp_path: Path) -> None:
    chunks = [b"x" * 1000, b"y" * 1000]

    def read(_: int) -> bytes:
        if not chunks:
            raise ConnectionResetError("peer went away")
        return chunks.pop(0)

    before = threading.active_count()
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ConnectionResetError):
            copy_and_hash(read, fd)
    finally:
        os.close(fd)
    assert threading.active_count() == before
