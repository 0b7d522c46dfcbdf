"""The weights cache on a real directory: partial files never count, LRU eviction by size limit never touches a
blob in use, the free-space check names its numbers, and the in-order hasher is right in any write order."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.weights import InsufficientSpaceError, StageError, WeightsCache
from ebbtide.weights.cache import FREE_SPACE_RESERVE_BYTES, cache_limit_from_env
from ebbtide.weights.hashing import PrefixHasher

ROOMY = 10**12


def _put_blob(cache: WeightsCache, data: bytes, last_used: float) -> str:
    digest = hashlib.sha256(data).hexdigest()
    cache.partial_dir.mkdir(parents=True, exist_ok=True)
    cache.part_path(digest).write_bytes(data)
    cache.commit(digest)
    os.utime(cache.blob_path(digest), (last_used, last_used))
    return digest


def test_a_partial_file_is_never_a_hit(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path)
    data = b"GGUF" * 1000
    digest = hashlib.sha256(data).hexdigest()
    cache.partial_dir.mkdir(parents=True)
    cache.part_path(digest).write_bytes(data)
    assert cache.open_hit(digest) is None
    cache.commit(digest)
    hold = cache.open_hit(digest)
    assert hold is not None and hold.path.read_bytes() == data
    assert not cache.part_path(digest).exists()
    assert cache.blob_path(digest).stat().st_mode & 0o222 == 0  # committed blobs are read-only
    hold.close()


def test_eviction_by_size_limit_takes_least_recently_used_first(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path, limit_bytes=2500, free_bytes=lambda _: ROOMY)
    old = _put_blob(cache, b"a" * 1000, last_used=1_000)
    middle = _put_blob(cache, b"b" * 1000, last_used=2_000)
    new = _put_blob(cache, b"c" * 1000, last_used=3_000)
    evicted = cache.evict_to_limit(keep=new)
    assert [e.sha256 for e in evicted] == [old]
    assert {e.sha256 for e in cache.entries()} == {middle, new}


def test_a_blob_in_use_is_never_evicted(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path, limit_bytes=1500, free_bytes=lambda _: ROOMY)
    in_use = _put_blob(cache, b"a" * 1000, last_used=1_000)
    idle = _put_blob(cache, b"b" * 1000, last_used=2_000)
    keep = _put_blob(cache, b"c" * 1000, last_used=3_000)
    hold = cache.open_hit(in_use)  # what a running replica holds
    assert hold is not None
    os.utime(cache.blob_path(in_use), (1_000, 1_000))  # still the oldest
    evicted = cache.evict_to_limit(keep=keep)
    assert [e.sha256 for e in evicted] == [idle]
    assert cache.blob_path(in_use).exists()
    hold.close()
    assert [e.sha256 for e in cache.evict_to_limit(keep=keep)] == [in_use]


def test_make_room_evicts_unused_blobs_for_a_new_one(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path, limit_bytes=2500, free_bytes=lambda _: ROOMY)
    old = _put_blob(cache, b"a" * 1000, last_used=1_000)
    new = _put_blob(cache, b"b" * 1000, last_used=2_000)
    evicted = cache.make_room("f" * 64, 1000, "http://x/m.gguf")
    assert [e.sha256 for e in evicted] == [old]
    assert {e.sha256 for e in cache.entries()} == {new}


def test_free_space_check_names_the_numbers(tmp_path: Path) -> None:
    free = 50_000_000
    cache = WeightsCache(tmp_path, free_bytes=lambda _: free)
    with pytest.raises(InsufficientSpaceError) as info:
        cache.make_room("e" * 64, 300_000_000, "s3://weights/big.gguf")
    message = str(info.value)
    assert "s3://weights/big.gguf" in message and str(tmp_path) in message
    assert "300000000 bytes" in message and f"{free} bytes" in message
    assert "EBBTIDE_MODEL_CACHE" in message


def test_free_space_counts_what_a_partial_download_already_holds(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path, free_bytes=lambda _: FREE_SPACE_RESERVE_BYTES + 600_000)
    digest = "d" * 64
    cache.partial_dir.mkdir(parents=True)
    cache.part_path(digest).write_bytes(os.urandom(500_000))
    cache.make_room(digest, 1_000_000, "http://x/m.gguf")  # 500 kB still to come: fits
    with pytest.raises(InsufficientSpaceError):
        cache.make_room("c" * 64, 1_000_000, "http://x/other.gguf")


def test_a_blob_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path, limit_bytes=1000, free_bytes=lambda _: ROOMY)
    with pytest.raises(StageError, match="larger than the weights cache limit"):
        cache.make_room("a" * 64, 2000, "http://x/m.gguf")


def test_cache_limit_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EBBTIDE_MODEL_CACHE_LIMIT_GB", raising=False)
    assert cache_limit_from_env() is None
    monkeypatch.setenv("EBBTIDE_MODEL_CACHE_LIMIT_GB", "2.5")
    assert cache_limit_from_env() == 2_500_000_000
    monkeypatch.setenv("EBBTIDE_MODEL_CACHE_LIMIT_GB", "lots")
    with pytest.raises(ValueError, match="EBBTIDE_MODEL_CACHE_LIMIT_GB = 'lots'"):
        cache_limit_from_env()


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=12), seed=st.integers(0, 2**32 - 1),
       repeat=st.booleans())  # fmt: skip
def test_prefix_hasher_matches_sha256_in_any_write_order(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], seed: int, repeat: bool
) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(sum(sizes))
    pieces, pos = [], 0
    for size in sizes:
        pieces.append((pos, data[pos : pos + size]))
        pos += size
    rng.shuffle(pieces)
    if repeat:  # a retried part writes the same range twice
        pieces.append(pieces[0])
    path = tmp_path_factory.mktemp("hash") / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        hasher = PrefixHasher(fd)
        for offset, piece in pieces:
            os.pwrite(fd, piece, offset)
            hasher.wrote(offset, len(piece), piece if rng.random() < 0.7 else None)
        assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)


def test_prefix_hasher_reports_a_short_file(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(fd, b"x" * 100, 0)
        hasher = PrefixHasher(fd)
        hasher.wrote(0, 100, b"x" * 100)
        with pytest.raises(EOFError):
            hasher.finish(200)
    finally:
        os.close(fd)
