"""Where remote weights live: ``s3://bucket/key`` or ``http(s)://...`` URLs, checked before anything is fetched."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["REMOTE_SCHEMES", "S3Location", "check_sha256", "check_url", "is_remote", "parse_s3", "sha256_from_base64"]

REMOTE_SCHEMES = ("s3://", "http://", "https://")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def is_remote(model: str) -> bool:
    """True when ``model`` names weights to stage (s3:// or http(s)://) rather than a local file or 'default'."""
    return model.lower().startswith(REMOTE_SCHEMES)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str


def parse_s3(url: str) -> S3Location:
    """``s3://bucket/key`` → its parts; ValueError naming what is missing."""
    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if parts.scheme.lower() != "s3" or not parts.netloc or not key or key.endswith("/"):
        raise ValueError(f"{url!r}: an S3 model must be s3://BUCKET/KEY naming one object (a .gguf file)")
    return S3Location(parts.netloc, key)


def check_url(url: str) -> str:
    """``url`` if it is a usable remote model URL, else ValueError saying what is wrong."""
    if url.lower().startswith("s3://"):
        parse_s3(url)
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.path in ("", "/"):
        raise ValueError(f"{url!r}: an HTTP model must be http(s)://HOST/PATH naming one file (a .gguf file)")
    return url


def check_sha256(value: str) -> str:
    """The lowercase hex form of a sha256 digest; ValueError unless it is 64 hex digits."""
    digest = value.strip().lower()
    if not _HEX64.match(digest):
        raise ValueError(f"{value!r}: a sha256 is 64 hexadecimal digits")
    return digest


def sha256_from_base64(value: str) -> str | None:
    """S3's base64 ``ChecksumSHA256`` as hex; None when it is not a plain digest (a multipart ``...-N`` one)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None
