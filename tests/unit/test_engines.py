"""Engine launch commands, metrics parsing on recorded text, and the engine factory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ebbtide.config import LlamaCppEngineSpec, OpenAIEngineSpec, TgiEngineSpec, VllmEngineSpec
from ebbtide.engines import (
    LlamaCppEngine,
    ModelNotFoundError,
    OpenAIEngine,
    TgiEngine,
    VllmEngine,
    build_engine,
)
from ebbtide.engines.base import EngineStats
from ebbtide.engines.openai import normalize_base_url

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_llamacpp_launch_plan_runs_the_worker_with_pool_parameters(tmp_path: Path) -> None:
    spec = LlamaCppEngineSpec(model="m.gguf", slots=3, ctx_per_slot=1024, args=["cache_prompt=false"])
    engine = LlamaCppEngine(spec, tmp_path / "m.gguf", lease_timeout_s=7.5, alias="tiny")
    plan = engine.launch_plan(port=40123, threads=2, lease_path=tmp_path / "lease")
    argv = plan.argv
    assert argv[:3] == [sys.executable, "-m", "ebbtide.engines.llamacpp_worker"]
    assert _flag(argv, "--model") == str(tmp_path / "m.gguf")
    assert _flag(argv, "--host") == "127.0.0.1"
    assert _flag(argv, "--port") == "40123"
    assert _flag(argv, "--slots") == "3"
    assert _flag(argv, "--threads") == "2"
    assert _flag(argv, "--ctx-per-slot") == "1024"
    assert _flag(argv, "--lease") == str(tmp_path / "lease")
    assert _flag(argv, "--lease-timeout") == "7.5"
    assert _flag(argv, "--alias") == "tiny"
    assert argv[-2:] == ["--", "cache_prompt=false"]
    assert engine.slots == 3
    assert engine.launches is True
    assert engine.upstream_model("anything") is None


def test_llamacpp_launch_plan_without_lease_or_args(tmp_path: Path) -> None:
    argv = LlamaCppEngine(LlamaCppEngineSpec(), tmp_path / "m.gguf").launch_plan(5000, 1, None).argv
    assert "--lease" not in argv
    assert "--lease-timeout" not in argv
    assert "--" not in argv
    assert "--alias" not in argv


def test_worker_argv_is_accepted_by_the_worker_parser(tmp_path: Path) -> None:
    from ebbtide.engines.llamacpp_worker import _parser

    spec = LlamaCppEngineSpec(slots=2, args=["n_predict=64", "cache_prompt=false"])
    argv = LlamaCppEngine(spec, tmp_path / "m.gguf", alias="a").launch_plan(5000, 1, tmp_path / "l").argv
    ns = _parser().parse_args(argv[3:])
    assert (ns.port, ns.slots, ns.threads, ns.alias) == (5000, 2, 1, "a")
    assert ns.lease == tmp_path / "l"
    assert ns.extra == ["n_predict=64", "cache_prompt=false"]


def test_llamacpp_metrics_recorded_from_a_real_server() -> None:
    engine = LlamaCppEngine(LlamaCppEngineSpec(), Path("unused.gguf"))
    stats = engine.parse_metrics(_fixture("llamacpp_metrics.txt"))
    assert stats == EngineStats(
        requests_running=1.0, requests_waiting=2.0, prompt_tokens_total=14.0, generation_tokens_total=8.0
    )


def test_vllm_launch_plan() -> None:
    spec = VllmEngineSpec(model="meta-llama/Llama-3.1-8B-Instruct", slots=64, tensor_parallel=2,
                          args=["--max-model-len", "8192"])
    plan = VllmEngine(spec).launch_plan(port=8123, threads=4, lease_path=None)
    assert plan.argv == [
        "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct",
        "--host", "127.0.0.1", "--port", "8123",
        "--max-num-seqs", "64", "--tensor-parallel-size", "2",
        "--max-model-len", "8192",
    ]  # fmt: skip


def test_vllm_custom_command_is_used() -> None:
    plan = VllmEngine(VllmEngineSpec(model="m", command="/opt/venv/bin/vllm")).launch_plan(1, 1, None)
    assert plan.argv[:3] == ["/opt/venv/bin/vllm", "serve", "m"]


def test_vllm_metrics_v1_names() -> None:
    stats = VllmEngine(VllmEngineSpec(model="m")).parse_metrics(_fixture("vllm_metrics.txt"))
    assert stats == EngineStats(
        requests_running=7.0,
        requests_waiting=3.0,
        prompt_tokens_total=212480.0,
        generation_tokens_total=95731.0,
        kv_cache_usage=0.4187,
    )


def test_vllm_metrics_v0_cache_name_and_engines_summed() -> None:
    text = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 5.0\n'
        "# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'vllm:gpu_cache_usage_perc{engine="1",model_name="m"} 0.75\n'
    )
    stats = VllmEngine(VllmEngineSpec(model="m")).parse_metrics(text)
    assert stats.requests_running == 7.0
    assert stats.kv_cache_usage == 0.75
    assert stats.requests_waiting is None
    assert stats.prompt_tokens_total is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "org/model"),
        (["--served-model-name", "short"], "short"),
        (["--served-model-name=short2"], "short2"),
    ],
)
def test_vllm_upstream_model_is_the_served_name(args: list[str], expected: str) -> None:
    assert VllmEngine(VllmEngineSpec(model="org/model", args=args)).upstream_model("client-name") == expected


def test_tgi_launch_plan_binds_loopback_and_isolates_shard_socket() -> None:
    spec = TgiEngineSpec(model="bigscience/bloom-560m", slots=32, args=["--max-total-tokens", "4096"])
    argv = TgiEngine(spec).launch_plan(port=9001, threads=1, lease_path=None).argv
    assert argv[0] == "text-generation-launcher"
    assert _flag(argv, "--model-id") == "bigscience/bloom-560m"
    assert _flag(argv, "--hostname") == "127.0.0.1"
    assert _flag(argv, "--port") == "9001"
    assert _flag(argv, "--max-concurrent-requests") == "32"
    assert _flag(argv, "--shard-uds-path").endswith("ebbtide-tgi-9001")
    assert argv[-2:] == ["--max-total-tokens", "4096"]
    other = TgiEngine(spec).launch_plan(port=9002, threads=1, lease_path=None).argv
    assert _flag(other, "--shard-uds-path") != _flag(argv, "--shard-uds-path")


def test_tgi_metrics() -> None:
    stats = TgiEngine(TgiEngineSpec(model="m")).parse_metrics(_fixture("tgi_metrics.txt"))
    assert stats == EngineStats(
        requests_running=12.0,
        requests_waiting=4.0,
        prompt_tokens_total=181226.0,
        generation_tokens_total=70412.0,
    )


@pytest.mark.parametrize("engine_name", ["llamacpp", "vllm", "tgi"])
def test_malformed_metrics_text_is_a_value_error(engine_name: str) -> None:
    engines = {
        "llamacpp": LlamaCppEngine(LlamaCppEngineSpec(), Path("m.gguf")),
        "vllm": VllmEngine(VllmEngineSpec(model="m")),
        "tgi": TgiEngine(TgiEngineSpec(model="m")),
    }
    with pytest.raises(ValueError, match="Prometheus"):
        engines[engine_name].parse_metrics("llamacpp:requests_processing {{ not a number\n")


def test_metrics_missing_from_text_are_none_not_zero() -> None:
    stats = LlamaCppEngine(LlamaCppEngineSpec(), Path("m.gguf")).parse_metrics("")
    assert stats == EngineStats()


def test_openai_engine_is_never_launched() -> None:
    engine = OpenAIEngine(OpenAIEngineSpec(url="http://10.0.0.5:8000/v1/", model="gpt-x", slots=16))
    assert engine.launches is False
    assert engine.slots == 16
    assert engine.base_url == "http://10.0.0.5:8000"
    assert engine.upstream_model("client") == "gpt-x"
    assert engine.parse_metrics("anything") == EngineStats()
    with pytest.raises(NotImplementedError, match="never launched"):
        engine.launch_plan(1, 1, None)


def test_openai_engine_passes_model_through_when_unset() -> None:
    assert OpenAIEngine(OpenAIEngineSpec(url="http://h")).upstream_model("client") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8000", "http://h:8000"),
        ("http://h:8000/", "http://h:8000"),
        ("http://h:8000/v1", "http://h:8000"),
        ("https://api.example.com/proxy/v1/", "https://api.example.com/proxy"),
    ],
)
def test_openai_base_url_normalization(url: str, expected: str) -> None:
    assert normalize_base_url(url) == expected


def test_build_engine_dispatches_on_kind(tmp_path: Path, tiny_gguf_path: Path) -> None:
    llama = build_engine(LlamaCppEngineSpec(model=str(tiny_gguf_path)), lease_timeout_s=4.0)
    assert isinstance(llama, LlamaCppEngine)
    assert llama.model_path == tiny_gguf_path.resolve()
    assert _flag(llama.launch_plan(1, 1, tmp_path / "l").argv, "--lease-timeout") == "4"
    assert isinstance(build_engine(VllmEngineSpec(model="m")), VllmEngine)
    assert isinstance(build_engine(TgiEngineSpec(model="m")), TgiEngine)
    assert isinstance(build_engine(OpenAIEngineSpec(url="http://h")), OpenAIEngine)
    assert {e.kind for e in (llama, build_engine(VllmEngineSpec(model="m")))} == {"llamacpp", "vllm"}


def test_build_engine_fails_early_on_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        build_engine(LlamaCppEngineSpec(model=str(tmp_path / "absent.gguf")))
