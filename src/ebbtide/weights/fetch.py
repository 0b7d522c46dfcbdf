"""What every weights source offers the stager: a probe (size, the sha256 it publishes) and a fetch into the cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ebbtide.weights.cache import WeightsCache

__all__ = ["FetchError", "Fetched", "Fetcher", "PermanentFetchError", "Probe", "StageError"]


class StageError(RuntimeError):
    """Weights could not be staged; the message names the source and what to fix."""


class FetchError(StageError):
    """A download failed in a way another attempt may fix (connection lost, truncated body, 5xx)."""


class PermanentFetchError(FetchError):
    """Retrying cannot help (404, 403, no credentials, no sha256 to verify against); the message says what to fix."""


@dataclass(frozen=True)
class Probe:
    size_bytes: int
    resumable: bool  # ranged requests work, so an interrupted download continues where it stopped


@dataclass(frozen=True)
class Fetched:
    sha256: str  # digest of the bytes now in the cache's .part file
    bytes_fetched: int  # transferred by this attempt
    resumed_from_bytes: int  # already in the .part file from an earlier, interrupted attempt


class Fetcher(Protocol):
    source: str

    def published_sha256(self) -> str | None:
        """The digest the source publishes (S3 checksum or metadata, an HTTP ``.sha256`` sidecar), if any."""
        ...

    def probe(self) -> Probe:
        """Size and resumability, without downloading the weights."""
        ...

    def fetch(self, cache: WeightsCache, sha256: str, probe: Probe) -> Fetched:
        """Download into ``cache.part_path(sha256)`` (resuming what is there when the source allows it)."""
        ...
