"""Staging over HTTP from a real local server with Range support: verified, resumed at the right byte, refetched
when corrupt, detected when truncated, one download for concurrent stagers, clear errors."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from ebbtide.testing.range_server import Fault, RangeServer
from ebbtide.weights import MAX_ATTEMPTS, PermanentFetchError, StageError, WeightsCache, stage_weights
from ebbtide.weights.http_fetch import HttpFetcher

SEGMENT = 64 * 1024


@pytest.fixture
def model(tiny_gguf_path: Path) -> tuple[bytes, str]:
    data = tiny_gguf_path.read_bytes()
    assert len(data) > 4 * SEGMENT  # several segments, so parallel ranges and resumes are exercised
    return data, hashlib.sha256(data).hexdigest()


def _server(model: tuple[bytes, str], *, sidecar: bool = True, ranges: bool = True) -> RangeServer:
    data, digest = model
    files: dict[str, bytes | Path] = {"/m.gguf": data}
    if sidecar:
        files["/m.gguf.sha256"] = f"{digest}  m.gguf\n".encode()
    return RangeServer(files, ranges=ranges)


def _stage(server: RangeServer, cache: WeightsCache, sha256: str | None = None):  # type: ignore[no-untyped-def]
    url = server.url("/m.gguf")
    fetcher = HttpFetcher(url, segment_bytes=SEGMENT, concurrency=3, backoff_s=0.01)
    return stage_weights(url, cache=cache, sha256=sha256, fetcher=fetcher)


def _body_gets(server: RangeServer) -> list[str | None]:
    return [r.range for r in server.gets("/m.gguf") if r.range != "bytes=0-0"]


def test_stages_with_the_sidecar_digest_then_hits_without_fetching(tmp_path: Path, model: tuple[bytes, str]) -> None:
    data, digest = model
    cache = WeightsCache(tmp_path)
    with _server(model) as server:
        staged = _stage(server, cache)
        assert staged.path == cache.blob_path(digest) and staged.path.read_bytes() == data
        report = staged.report
        assert not report.cache_hit and report.bytes_fetched == len(data) and report.attempts == 1
        assert report.page_cache_s is not None
        fetched_once = len(_body_gets(server))
        assert fetched_once == -(-len(data) // SEGMENT)  # one ranged GET per segment
        staged.hold.close()
        again = _stage(server, cache)
        assert again.report.cache_hit and again.report.bytes_fetched == 0
        assert len(_body_gets(server)) == fetched_once  # no weights fetched the second time
        again.hold.close()
    with_digest = _stage(server, cache, sha256=digest)  # server stopped: a hit with engine.sha256 needs no network
    assert with_digest.report.cache_hit
    with_digest.hold.close()


def test_an_interrupted_download_resumes_at_the_byte_it_stopped(tmp_path: Path, model: tuple[bytes, str]) -> None:
    data, _ = model
    cut_at = 10_000
    with _server(model) as server:
        server.add_fault("/m.gguf", Fault("drop", after_bytes=cut_at, min_body_bytes=SEGMENT))
        staged = _stage(server, WeightsCache(tmp_path))
        assert staged.path.read_bytes() == data
        gets = server.gets("/m.gguf")
    dropped = next(r for r in gets if r.body_bytes == cut_at)
    first = int(dropped.range.removeprefix("bytes=").split("-")[0])  # type: ignore[union-attr]
    resumed = [r for r in gets if r.range and r.range.startswith(f"bytes={first + cut_at}-")]
    assert len(resumed) == 1 and resumed[0].status == 206  # one Range request from the first missing byte
    assert staged.report.attempts == 1 and staged.report.bytes_fetched == len(data)


def test_a_new_stager_resumes_a_partial_download_left_by_a_failed_one(
    tmp_path: Path, model: tuple[bytes, str]
) -> None:
    data, digest = model
    cache = WeightsCache(tmp_path)
    with _server(model) as server:
        server.add_fault("/m.gguf", Fault("drop", after_bytes=20_000, min_body_bytes=SEGMENT))
        server.add_fault("/m.gguf", Fault("status", status=404))  # the retry of that segment fails for good
        with pytest.raises(PermanentFetchError, match="HTTP 404"):
            _stage(server, cache, sha256=digest)
        assert cache.open_hit(digest) is None and cache.part_path(digest).exists()
        done_before = len(server.requests)
        staged = _stage(server, cache, sha256=digest)
        assert staged.path.read_bytes() == data
        later = [r for r in server.requests[done_before:] if r.path == "/m.gguf" and r.range != "bytes=0-0"]
    report = staged.report
    assert report.resumed_from_bytes >= 20_000 and report.bytes_fetched == len(data) - report.resumed_from_bytes
    assert sum(r.body_bytes for r in later) == report.bytes_fetched  # nothing downloaded twice
    assert all(r.status == 206 for r in later)


def test_a_corrupted_download_is_discarded_and_fetched_again(tmp_path: Path, model: tuple[bytes, str]) -> None:
    data, digest = model
    with _server(model) as server:
        server.add_fault("/m.gguf", Fault("corrupt"))
        staged = _stage(server, WeightsCache(tmp_path))
        segments = -(-len(data) // SEGMENT)
        assert len(_body_gets(server)) == 2 * segments  # the whole file twice: corrupt bytes are not resumed
    assert staged.report.attempts == 2 and staged.path.read_bytes() == data
    assert hashlib.sha256(staged.path.read_bytes()).hexdigest() == digest


def test_a_source_that_keeps_serving_wrong_bytes_fails_clearly(tmp_path: Path, model: tuple[bytes, str]) -> None:
    _, digest = model
    cache = WeightsCache(tmp_path)
    wrong = "0" * 64
    with _server(model) as server, pytest.raises(StageError) as info:
        _stage(server, cache, sha256=wrong)
    message = str(info.value)
    assert f"in {MAX_ATTEMPTS} attempts" in message
    assert f"hash to {digest}, expected {wrong}" in message
    assert cache.open_hit(wrong) is None and not cache.part_path(wrong).exists()


def test_a_truncated_body_from_a_server_without_ranges_is_detected_and_refetched(
    tmp_path: Path, model: tuple[bytes, str]
) -> None:
    data, _ = model
    with _server(model, ranges=False) as server:
        server.add_fault("/m.gguf", Fault("drop", after_bytes=len(data) // 3, skip=1))  # skip: the probe
        staged = _stage(server, WeightsCache(tmp_path))
        full = [r for r in server.gets("/m.gguf") if r.range is None]
    assert [r.body_bytes for r in full] == [len(data) // 3, len(data)]  # cut, then the whole file again
    assert staged.report.attempts == 2 and staged.path.read_bytes() == data


def test_a_range_answered_with_the_whole_file_is_not_written(tmp_path: Path, model: tuple[bytes, str]) -> None:
    data, digest = model
    with _server(model) as server:
        server.add_fault("/m.gguf", Fault("ignore_range", min_body_bytes=SEGMENT, skip=1))
        staged = _stage(server, WeightsCache(tmp_path), sha256=digest)
        whole = [r for r in server.gets("/m.gguf") if r.status == 200]
    assert len(whole) == 1 and whole[0].range is not None  # asked for a range, got the whole file
    # Had those bytes been written at the segment's offset, the digest would have failed and forced attempt 2.
    assert staged.report.attempts == 1 and staged.path.read_bytes() == data


def test_no_digest_anywhere_is_a_clear_error(tmp_path: Path, model: tuple[bytes, str]) -> None:
    with _server(model, sidecar=False) as server, pytest.raises(PermanentFetchError) as info:
        _stage(server, WeightsCache(tmp_path))
    assert "engine.sha256" in str(info.value) and ".sha256" in str(info.value)


def test_a_missing_file_is_not_retried(tmp_path: Path, model: tuple[bytes, str]) -> None:
    with _server(model) as server:
        url = server.url("/absent.gguf")
        with pytest.raises(PermanentFetchError, match="HTTP 404"):
            stage_weights(url, cache=WeightsCache(tmp_path), sha256="a" * 64)
        assert len([r for r in server.requests if r.path == "/absent.gguf"]) == 1


def test_concurrent_stagers_of_one_model_download_it_once(tmp_path: Path, model: tuple[bytes, str]) -> None:
    data, digest = model
    results: list[object] = []

    def stage() -> None:
        try:
            staged = _stage(server, WeightsCache(tmp_path), sha256=digest)
            results.append(staged.report)
            staged.hold.close()
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)

    with _server(model) as server:
        threads = [threading.Thread(target=stage) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        segments = -(-len(data) // SEGMENT)
        assert len(_body_gets(server)) == segments
    hits = [r.cache_hit for r in results]  # type: ignore[attr-defined]
    assert sorted(hits) == [False, True, True]
