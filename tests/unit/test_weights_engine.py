"""Remote models in the config and the llama.cpp launch: checked at load, staged by the worker, local unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ebbtide.config import ConfigError, LlamaCppEngineSpec, load_config
from ebbtide.engines import build_engine
from ebbtide.engines.llamacpp import LlamaCppEngine
from ebbtide.engines.models import RemoteWeights

DIGEST = "ab" * 32


def _load(tmp_path: Path, engine: dict[str, object]) -> object:
    path = tmp_path / "ebbtide.yaml"
    path.write_text(yaml.safe_dump({"pools": [{"name": "p", "engine": {"kind": "llamacpp", **engine}}]}))
    return load_config(path)


def test_a_remote_model_is_handed_to_the_worker_unfetched(tmp_path: Path) -> None:
    spec = LlamaCppEngineSpec(model="s3://weights/models/m.gguf", sha256=DIGEST.upper(), cache_limit_gb=2.5)
    engine = build_engine(spec, tmp_path)
    assert isinstance(engine, LlamaCppEngine)
    assert engine.model_path == RemoteWeights("s3://weights/models/m.gguf", DIGEST, tmp_path, 2_500_000_000)
    argv = engine.launch_plan(8081, 1, None).argv
    at = argv.index("--model")
    assert argv[at + 1] == "s3://weights/models/m.gguf"
    assert argv[argv.index("--sha256") + 1] == DIGEST
    assert argv[argv.index("--model-cache") + 1] == str(tmp_path)
    assert argv[argv.index("--cache-limit-bytes") + 1] == "2500000000"
    assert list(tmp_path.iterdir()) == []  # nothing fetched by the gateway


def test_a_remote_model_without_options_leaves_them_to_the_node() -> None:
    engine = build_engine(LlamaCppEngineSpec(model="https://host/models/m.gguf"))
    argv = engine.launch_plan(8081, 1, None).argv
    assert "--sha256" not in argv and "--model-cache" not in argv and "--cache-limit-bytes" not in argv


def test_a_local_model_launches_exactly_as_before(tiny_gguf_path: Path) -> None:
    engine = build_engine(LlamaCppEngineSpec(model=str(tiny_gguf_path)))
    argv = engine.launch_plan(8081, 1, None).argv
    assert argv[argv.index("--model") + 1] == str(tiny_gguf_path.resolve())
    assert "--sha256" not in argv


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ({"model": "s3://bucket-only"}, "s3://BUCKET/KEY"),
        ({"model": "https://host/"}, "http(s)://HOST/PATH"),
        ({"model": "default", "sha256": DIGEST}, "only used when model is an s3://"),
        ({"model": "s3://b/k.gguf", "sha256": "xyz"}, "pools.0.engine.sha256"),
        ({"model": "s3://b/k.gguf", "cache_limit_gb": 0}, "pools.0.engine.cache_limit_gb"),
    ],
)
def test_bad_remote_settings_are_config_errors_naming_the_file(
    tmp_path: Path, engine: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, engine)
    message = str(info.value)
    assert str(tmp_path / "ebbtide.yaml") in message and expected in message
