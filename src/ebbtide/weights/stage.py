"""``stage_weights``: make remote weights a verified local file, fetching only when this node lacks them.

Steps: find the expected sha256 (``engine.sha256``, else what the source publishes); on a cache hit, take a
shared hold on the blob and stop there; otherwise, under the node's download lock for that digest, make room
(evicting unused blobs by LRU, checking free space), download (resuming a partial one when the source allows),
verify, commit, then evict down to the size limit. Finally the blob is read once into the page cache so the
engine's load does not wait on the disk.

A download whose digest does not match is discarded and fetched again; network failures keep the partial file
for the next attempt. Both count towards ``MAX_ATTEMPTS``, after which StageError says what kept failing.

The returned :class:`StageReport` carries the timings of the "weights staged (fetch)" and "page cache" phases,
for per-phase cold-start timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ebbtide.weights.cache import BlobHold, CacheEntry, WeightsCache, format_bytes, warm_page_cache
from ebbtide.weights.fetch import Fetched, Fetcher, FetchError, PermanentFetchError, Probe, StageError
from ebbtide.weights.sources import check_sha256, check_url

__all__ = ["MAX_ATTEMPTS", "StageReport", "Staged", "fetcher_for", "stage_weights"]

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class StageReport:
    source: str
    sha256: str
    path: Path
    size_bytes: int
    cache_hit: bool
    fetch_s: float  # lookup, download and verification (on a hit: only the lookup)
    page_cache_s: float | None  # reading the blob once; None when skipped (larger than the free memory)
    bytes_fetched: int = 0
    resumed_from_bytes: int = 0
    attempts: int = 0
    evicted: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["path"] = str(self.path)
        record["evicted"] = list(self.evicted)
        return record

    def summary(self) -> str:
        size = format_bytes(self.size_bytes)
        if self.cache_hit:
            how = f"cache hit ({size}, {self.fetch_s:.2f} s)"
        else:
            rate = format_bytes(self.bytes_fetched / self.fetch_s) + "/s" if self.fetch_s > 0 else "-"
            resumed = f", resumed at {format_bytes(self.resumed_from_bytes)}" if self.resumed_from_bytes else ""
            tries = f"{self.attempts} attempt(s)"
            how = f"fetched {size} in {self.fetch_s:.2f} s ({rate}, sha256 verified, {tries}{resumed})"
        page = "skipped" if self.page_cache_s is None else f"{self.page_cache_s:.2f} s"
        return f"{self.source} -> {self.path}: {how}; page cache {page}"


@dataclass
class Staged:
    """The staged file, how staging went, and the hold that keeps the blob from eviction while it is used."""

    path: Path
    report: StageReport
    hold: BlobHold


def fetcher_for(url: str, *, s3_client: Any = None) -> Fetcher:
    """The fetcher for ``url``'s scheme (s3:// or http(s)://)."""
    if url.lower().startswith("s3://"):
        from ebbtide.weights.s3_fetch import S3Fetcher

        return S3Fetcher(url, client=s3_client)
    from ebbtide.weights.http_fetch import HttpFetcher

    return HttpFetcher(url)


def stage_weights(
    url: str,
    *,
    cache: WeightsCache,
    sha256: str | None = None,
    fetcher: Fetcher | None = None,
    warm: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> Staged:
    """Stage ``url`` into ``cache`` (see the module docstring); raises StageError saying what went wrong."""
    try:
        check_url(url)
        expected = check_sha256(sha256) if sha256 else None
    except ValueError as exc:
        raise StageError(f"engine.model / engine.sha256: {exc}") from None
    fetcher = fetcher or fetcher_for(url)
    started = clock()
    if expected is None:
        expected = fetcher.published_sha256()
        if expected is None:
            raise PermanentFetchError(
                f"{url}: no sha256 to verify the download against: set engine.sha256, or publish it "
                "(S3: upload with --checksum-algorithm SHA256 or x-amz-meta-sha256; HTTP: a <url>.sha256 file)"
            )
    hold = cache.open_hit(expected)
    fetched: Fetched | None = None
    attempts = 0
    evicted: list[CacheEntry] = []
    if hold is None:
        with cache.download_lock(expected):
            hold = cache.open_hit(expected)  # another stager on this node may have finished while we waited
            if hold is None:
                probe = fetcher.probe()
                evicted = cache.make_room(expected, probe.size_bytes, url)
                fetched, attempts = _download(fetcher, cache, expected, probe)
                cache.commit(expected)
                hold = cache.open_hit(expected)
    if hold is None:  # committed under our lock, so only an outside deletion gets here
        raise StageError(f"{url}: blob {expected} vanished from {cache.blob_dir} right after staging")
    fetch_s = clock() - started
    evicted += cache.evict_to_limit(keep=expected)
    page_cache_s = warm_page_cache(hold.path) if warm else None
    report = StageReport(
        source=url, sha256=expected, path=hold.path, size_bytes=hold.path.stat().st_size,
        cache_hit=fetched is None, fetch_s=fetch_s, page_cache_s=page_cache_s,
        bytes_fetched=fetched.bytes_fetched if fetched else 0,
        resumed_from_bytes=fetched.resumed_from_bytes if fetched else 0,
        attempts=attempts, evicted=tuple(e.sha256 for e in evicted),
    )  # fmt: skip
    return Staged(hold.path, report, hold)


def _download(fetcher: Fetcher, cache: WeightsCache, expected: str, probe: Probe) -> tuple[Fetched, int]:
    """Fetch until the digest matches; the result and the number of attempts it took."""
    problems: list[str] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            fetched = fetcher.fetch(cache, expected, probe)
        except PermanentFetchError:
            raise
        except (FetchError, EOFError) as exc:
            problems.append(f"attempt {attempt}: {exc}")  # the partial file stays: the next attempt resumes it
            continue
        if fetched.sha256 == expected:
            return fetched, attempt
        problems.append(f"attempt {attempt}: the bytes hash to {fetched.sha256}, expected {expected}")
        cache.discard_partial(expected)  # wrong bytes: nothing in them is worth resuming
    raise StageError(
        f"{fetcher.source}: could not stage a verified copy in {MAX_ATTEMPTS} attempts ("
        + "; ".join(problems)
        + "); if the digest differs every time, the source serves other bytes than the expected sha256 "
        "(engine.sha256 or the one it publishes) says"
    )
