"""Staging from a real S3 API (moto's threaded server on 127.0.0.1) through boto3's transfer manager."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ebbtide.testing.s3_server import LocalS3
from ebbtide.weights import (
    MAX_ATTEMPTS,
    InsufficientSpaceError,
    PermanentFetchError,
    StageError,
    WeightsCache,
    stage_weights,
)
from ebbtide.weights.s3_fetch import S3Fetcher, transfer_settings

BUCKET = "weights-unit"


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


class GetLog:
    """The Range of every GetObject the client sends (boto3's own event hook)."""

    def __init__(self, client: Any) -> None:
        self.ranges: list[str | None] = []
        client.meta.events.register("before-call.s3.GetObject", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.ranges.append(params.get("headers", {}).get("Range"))


def _fetcher(s3: LocalS3, key: str, **kwargs: Any) -> tuple[S3Fetcher, GetLog]:
    client = s3.client()
    return S3Fetcher(f"s3://{BUCKET}/{key}", client=client, **kwargs), GetLog(client)


def test_stages_with_the_objects_checksum_in_parallel_parts_then_hits(
    tmp_path: Path, s3: LocalS3, tiny_gguf_path: Path
) -> None:
    digest = s3.put(BUCKET, "tiny.gguf", tiny_gguf_path)
    cache = WeightsCache(tmp_path)
    fetcher, log = _fetcher(s3, "tiny.gguf", part_bytes=64 * 1024, concurrency=4, single_get=False)
    staged = stage_weights(fetcher.source, cache=cache, fetcher=fetcher)
    assert staged.report.sha256 == digest and not staged.report.cache_hit
    assert staged.path.read_bytes() == tiny_gguf_path.read_bytes()
    size = tiny_gguf_path.stat().st_size
    assert len(log.ranges) == -(-size // (64 * 1024)) and all(r and r.startswith("bytes=") for r in log.ranges)
    staged.hold.close()
    again = stage_weights(fetcher.source, cache=cache, fetcher=fetcher)
    assert again.report.cache_hit and len(log.ranges) == -(-size // (64 * 1024))  # no GET the second time
    again.hold.close()


def test_a_loopback_endpoint_gets_the_object_in_one_streamed_get(
    tmp_path: Path, s3: LocalS3, tiny_gguf_path: Path
) -> None:
    digest = s3.put(BUCKET, "one.gguf", tiny_gguf_path)
    fetcher, log = _fetcher(s3, "one.gguf", part_bytes=64 * 1024, concurrency=4)  # parts would be many
    assert tiny_gguf_path.stat().st_size > 64 * 1024 and fetcher.single_get(tiny_gguf_path.stat().st_size)
    staged = stage_weights(fetcher.source, cache=WeightsCache(tmp_path), fetcher=fetcher)
    assert staged.report.sha256 == digest and staged.path.read_bytes() == tiny_gguf_path.read_bytes()
    assert log.ranges == [None]  # one GET, no Range
    staged.hold.close()


def test_part_size_and_concurrency_come_from_the_environment() -> None:
    assert transfer_settings({"EBBTIDE_S3_PART_MB": "16", "EBBTIDE_S3_CONCURRENCY": "3"}) == (16 << 20, 3)
    assert transfer_settings({}) == (64 << 20, 8)
    with pytest.raises(PermanentFetchError, match="EBBTIDE_S3_CONCURRENCY = '0'"):
        transfer_settings({"EBBTIDE_S3_CONCURRENCY": "0"})


def test_stages_with_the_sha256_metadata(tmp_path: Path, s3: LocalS3, tiny_gguf_path: Path) -> None:
    digest = hashlib.sha256(tiny_gguf_path.read_bytes()).hexdigest()
    s3.put(BUCKET, "meta.gguf", tiny_gguf_path, checksum=False, metadata_sha256=digest)
    fetcher, _ = _fetcher(s3, "meta.gguf")
    staged = stage_weights(fetcher.source, cache=WeightsCache(tmp_path), fetcher=fetcher)
    assert staged.report.sha256 == digest and staged.report.bytes_fetched == tiny_gguf_path.stat().st_size


def test_an_object_without_a_digest_needs_engine_sha256(tmp_path: Path, s3: LocalS3) -> None:
    s3.put(BUCKET, "plain.gguf", b"GGUF" * 100, checksum=False)
    fetcher, log = _fetcher(s3, "plain.gguf")
    with pytest.raises(PermanentFetchError, match=r"set engine\.sha256"):
        stage_weights(fetcher.source, cache=WeightsCache(tmp_path), fetcher=fetcher)
    assert log.ranges == []


def test_bytes_that_never_match_the_expected_digest_fail_after_bounded_attempts(
    tmp_path: Path, s3: LocalS3
) -> None:
    s3.put(BUCKET, "other.gguf", b"not the weights you asked for" * 1000)
    fetcher, log = _fetcher(s3, "other.gguf")
    cache = WeightsCache(tmp_path)
    with pytest.raises(StageError, match=f"in {MAX_ATTEMPTS} attempts"):
        stage_weights(fetcher.source, cache=cache, sha256="a" * 64, fetcher=fetcher)
    assert len(log.ranges) == MAX_ATTEMPTS
    assert cache.entries() == [] and not cache.part_path("a" * 64).exists()


def test_a_missing_object_is_reported_and_not_retried(tmp_path: Path, s3: LocalS3) -> None:
    fetcher, log = _fetcher(s3, "absent.gguf")
    with pytest.raises(PermanentFetchError, match=r"absent\.gguf.*404"):
        stage_weights(fetcher.source, cache=WeightsCache(tmp_path), sha256="b" * 64, fetcher=fetcher)
    assert log.ranges == []


def test_free_space_is_checked_before_any_download(tmp_path: Path, s3: LocalS3, tiny_gguf_path: Path) -> None:
    s3.put(BUCKET, "tiny.gguf", tiny_gguf_path)
    fetcher, log = _fetcher(s3, "tiny.gguf")
    cache = WeightsCache(tmp_path, free_bytes=lambda _: 1000)
    with pytest.raises(InsufficientSpaceError, match=r"1000 bytes\) free"):
        stage_weights(fetcher.source, cache=cache, fetcher=fetcher)
    assert log.ranges == []


def test_staging_evicts_by_size_limit_but_never_a_blob_in_use(tmp_path: Path, s3: LocalS3) -> None:
    first, second, third = (bytes([n]) * 200_000 for n in (1, 2, 3))
    for key, body in (("a.gguf", first), ("b.gguf", second), ("c.gguf", third)):
        s3.put(BUCKET, key, body)
    cache = WeightsCache(tmp_path, limit_bytes=450_000)

    def stage(key: str) -> Any:
        fetcher, _ = _fetcher(s3, key)
        return stage_weights(fetcher.source, cache=cache, fetcher=fetcher)

    a = stage("a.gguf")  # a replica keeps serving this one: its hold stays open
    stage("b.gguf").hold.close()
    c = stage("c.gguf")
    kept = {e.sha256 for e in cache.entries()}
    assert kept == {a.report.sha256, c.report.sha256}  # b (unused, least recent) went; a is in use
    assert c.report.evicted == (hashlib.sha256(second).hexdigest(),)
    a.hold.close()
    c.hold.close()


def test_without_boto3_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what an install without the aws extra looks like
    with pytest.raises(PermanentFetchError, match=r"ebbtide\[aws\]"):
        stage_weights("s3://bucket/m.gguf", cache=WeightsCache(tmp_path), sha256="c" * 64)
