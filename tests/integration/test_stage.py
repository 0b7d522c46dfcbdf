"""Staged weights end to end: ``ebbtide stage`` against local S3 and HTTP servers, the worker's own staging,
and ``ebbtide serve`` answering from a replica that staged its http:// model (real llama.cpp)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ebbtide.engines.llamacpp_worker import EXIT_STAGE_FAILED
from ebbtide.providers.local import free_port
from ebbtide.testing.range_server import RangeServer
from ebbtide.testing.s3_server import LocalS3
from ebbtide.weights import WeightsCache
from tests.gateway_harness import gateway, http_json, wait_for, write_config

BUCKET = "weights-stage"


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


@pytest.fixture
def http_model(tiny_gguf_path: Path) -> Iterator[RangeServer]:
    import hashlib

    digest = hashlib.sha256(tiny_gguf_path.read_bytes()).hexdigest()
    sidecar = f"{digest}  tiny.gguf\n".encode()
    files: dict[str, bytes | Path] = {"/tiny.gguf": tiny_gguf_path, "/tiny.gguf.sha256": sidecar}
    with RangeServer(files) as server:
        yield server


def _pool(name: str, model: str, **engine: Any) -> dict[str, Any]:
    return {"name": name, "engine": {"kind": "llamacpp", "model": model, **engine}}


def _stage_cli(config: Path, cache: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ebbtide", "stage", "-c", str(config), "--cache-dir", str(cache), "--json", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_stage_cli_fetches_from_s3_and_http_then_hits(
    tmp_path: Path, s3: LocalS3, http_model: RangeServer, tiny_gguf_path: Path
) -> None:
    digest = s3.put(BUCKET, "models/tiny.gguf", tiny_gguf_path)
    config = tmp_path / "ebbtide.yaml"
    config.write_text(yaml.safe_dump({"pools": [
        _pool("from-s3", f"s3://{BUCKET}/models/tiny.gguf"),
        _pool("from-http", http_model.url("/tiny.gguf")),
        _pool("local", str(tiny_gguf_path)),
    ]}))  # fmt: skip
    for pool in ("from-s3", "from-http"):
        cache = tmp_path / f"cache-{pool}"
        done = _stage_cli(config, cache, s3.env(), "--pool", pool)
        assert done.returncode == 0, done.stderr
        [record] = [json.loads(line) for line in done.stdout.splitlines()]
        assert record["pool"] == pool and record["staged"] and not record["cache_hit"]
        assert record["sha256"] == digest and record["bytes_fetched"] == tiny_gguf_path.stat().st_size
        blob = WeightsCache(cache).blob_path(digest)
        assert Path(record["path"]) == blob and blob.read_bytes() == tiny_gguf_path.read_bytes()
    http_gets = len(http_model.gets("/tiny.gguf"))
    again = _stage_cli(config, tmp_path / "cache-from-http", s3.env())  # every pool, into the http cache
    assert again.returncode == 0, again.stderr
    records = {r["pool"]: r for r in map(json.loads, again.stdout.splitlines())}
    assert records["from-s3"]["cache_hit"] and records["from-http"]["cache_hit"]  # same bytes: one blob
    assert records["local"]["note"].startswith("local file")
    assert len(http_model.gets("/tiny.gguf")) == http_gets  # a hit fetched nothing (only S3 was asked its digest)


def test_stage_cli_exit_codes(tmp_path: Path, http_model: RangeServer) -> None:
    config = tmp_path / "ebbtide.yaml"
    config.write_text(yaml.safe_dump({"pools": [_pool("gone", http_model.url("/absent.gguf"), sha256="a" * 64)]}))
    failed = _stage_cli(config, tmp_path / "cache", {})
    assert failed.returncode == 1
    assert "HTTP 404" in json.loads(failed.stdout)["error"]
    unknown = _stage_cli(config, tmp_path / "cache", {}, "--pool", "nope")
    assert unknown.returncode == 2 and "no such pool" in unknown.stderr
    config.write_text(yaml.safe_dump({"pools": [_pool("bad", "s3://bucket-only")]}))
    invalid = _stage_cli(config, tmp_path / "cache", {})
    assert invalid.returncode == 2 and "s3://BUCKET/KEY" in invalid.stderr and "engine" in invalid.stderr


def test_a_warm_standby_stages_through_the_engines_stage_plan_and_starts_no_engine(
    tmp_path: Path, http_model: RangeServer, tiny_gguf_path: Path
) -> None:
    from ebbtide.config import LlamaCppEngineSpec
    from ebbtide.engines.factory import build_engine
    from ebbtide.weights import WeightsCache

    engine = build_engine(LlamaCppEngineSpec(model=http_model.url("/tiny.gguf")), tmp_path / "cache")
    plan = engine.stage_plan()
    assert plan is not None and "--stage-only" in plan.argv
    done = subprocess.run(plan.argv, capture_output=True, text=True, timeout=120, env={**os.environ, **plan.env})
    assert done.returncode == 0, done.stderr
    assert "weights staged (--stage-only)" in done.stderr and "loading" not in done.stderr  # no engine started
    [entry] = WeightsCache(tmp_path / "cache").entries()
    assert entry.path.read_bytes() == tiny_gguf_path.read_bytes()
    assert build_engine(LlamaCppEngineSpec(model=str(tiny_gguf_path))).stage_plan() is None  # a local file: nothing


def test_worker_that_cannot_stage_exits_with_its_code(tmp_path: Path, http_model: RangeServer) -> None:
    argv = [sys.executable, "-m", "ebbtide.engines.llamacpp_worker", "--model", http_model.url("/absent.gguf"),
            "--sha256", "b" * 64, "--model-cache", str(tmp_path), "--port", str(free_port())]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_STAGE_FAILED
    assert "staging failed" in done.stderr and "HTTP 404" in done.stderr


def test_serve_runs_a_pool_whose_model_is_an_http_url(
    tmp_path: Path, http_model: RangeServer, tiny_gguf_path: Path
) -> None:
    cache = tmp_path / "node-cache"
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path, engine={"model": http_model.url("/tiny.gguf")},
                       scaling={"min_replicas": 1, "max_replicas": 1, "policies": []})
    state = tmp_path / "state"
    with gateway(cfg, state, free_port(), env={"EBBTIDE_MODEL_CACHE": str(cache)}) as gw:
        status, body = http_json(gw.url + "/v1/completions", {"model": "tiny", "prompt": "the tide", "max_tokens": 4})
        assert status == 200, body
        assert body["usage"]["completion_tokens"] == 4
        [replica] = gw.replicas("tiny")
        log = (state / "logs" / f"{replica['id']}.log").read_text()
        tight = WeightsCache(cache, limit_bytes=1)  # wants every blob gone
        assert tight.evict_to_limit(keep="") == [] and len(tight.entries()) == 1  # the running replica holds it
    report = json.loads(log.split("stage-report ", 1)[1].splitlines()[0])
    assert not report["cache_hit"] and report["bytes_fetched"] == tiny_gguf_path.stat().st_size
    assert Path(report["path"]).parent == cache / "blobs" / "sha256"
    assert Path(report["path"]).read_bytes() == tiny_gguf_path.read_bytes()
    assert any(r.range and r.range != "bytes=0-0" for r in http_model.gets("/tiny.gguf"))
    # Once the replica is gone its hold is too, and the same eviction takes the blob.
    wait_for(lambda: WeightsCache(cache, limit_bytes=1).evict_to_limit(keep="") != [], 30, "the blob released")
    assert not Path(report["path"]).exists()
