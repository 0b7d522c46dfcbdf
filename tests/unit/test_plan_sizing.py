"""Sizing: seed 003's memory table, KV bytes per token, config.json parsing, fits and TP degrees."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ebbtide.plan.hardware import default_catalog
from ebbtide.plan.sizing import (
    PRESETS,
    SizingError,
    bytes_per_param,
    fits,
    format_gb,
    kv_bytes_per_token,
    max_concurrent_sequences,
    model_from_config_file,
    resolve_model,
    tp_degrees,
    weight_bytes,
)

SEED_003_TABLE = [
    (7, "14", "7", "3.5"),
    (13, "26", "13", "6.5"),
    (70, "140", "70", "35"),
    (405, "810", "405", "203"),
]

LLAMA_3_70B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "max_position_embeddings": 8192,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


@pytest.mark.parametrize(("billions", "fp16", "int8", "int4"), SEED_003_TABLE)
def test_seed_003_memory_table_reproduced_exactly(billions: int, fp16: str, int8: str, int4: str) -> None:
    params = billions * 1e9
    got = [format_gb(weight_bytes(params, p, nominal=True)) for p in ("fp16", "int8", "int4-awq")]
    assert got == [fp16, int8, int4]


def test_seed_table_is_params_times_bytes_in_decimal_gb() -> None:
    assert weight_bytes(405e9, "int4-awq", nominal=True) == 202.5e9
    assert weight_bytes(70e9, "fp16", nominal=True) == 140e9
    assert format_gb(202.5e9) == "203" and format_gb(202.4e9) == "202"


def test_int4_awq_counts_group_scales_and_zeros() -> None:
    assert bytes_per_param("int4-awq") == 0.5 + 2.5 / 128
    assert weight_bytes(70e9, "int4-awq") == pytest.approx(70e9 * 0.51953125)
    assert bytes_per_param("bf16") == bytes_per_param("fp16") == 2.0


def test_kv_bytes_per_token_llama_3() -> None:
    assert kv_bytes_per_token(PRESETS["llama-3-70b"]) == 327_680
    assert kv_bytes_per_token(PRESETS["llama-3-8b"]) == 128 * 1024
    assert kv_bytes_per_token(PRESETS["llama-3-70b"], "fp8") == 163_840


def test_config_json_gives_the_preset_shape_and_estimates_params(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_3_70B_CONFIG))
    shape = model_from_config_file(path)
    preset = PRESETS["llama-3-70b"]
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.vocab_size) == (80, 8, 128, 128_256)
    assert kv_bytes_per_token(shape) == 327_680
    assert shape.params == pytest.approx(preset.params, rel=1e-3)
    assert shape.params == 70_553_706_496


def test_config_json_head_dim_kv_default_and_given_params(tmp_path: Path) -> None:
    cfg = {**LLAMA_3_70B_CONFIG, "head_dim": 256, "num_attention_heads": 32}
    del cfg["num_key_value_heads"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    shape = model_from_config_file(path, params=12e9)
    assert (shape.head_dim, shape.kv_heads, shape.params) == (256, 32, 12e9)
    assert kv_bytes_per_token(shape) == 2 * 80 * 32 * 256 * 2


def test_config_json_errors_name_file_and_field(tmp_path: Path) -> None:
    cfg = dict(LLAMA_3_70B_CONFIG)
    del cfg["num_hidden_layers"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(SizingError, match=r"config\.json: num_hidden_layers = None"):
        model_from_config_file(path)
    path.write_text("{not json")
    with pytest.raises(SizingError, match=r"config\.json"):
        model_from_config_file(path)
    with pytest.raises(SizingError, match="llama-3-70b"):
        resolve_model("llama-4-giant")


def test_tp_must_divide_gpus_and_kv_heads() -> None:
    assert tp_degrees(PRESETS["llama-3-70b"], 8) == [1, 2, 4, 8]
    assert tp_degrees(PRESETS["llama-3-70b"], 4) == [1, 2, 4]
    assert tp_degrees(replace(PRESETS["llama-3-8b"], kv_heads=4), 8) == [1, 2, 4]


def test_fit_of_70b_fp16_on_8_a10g_by_hand() -> None:
    fit = fits(PRESETS["llama-3-70b"], "fp16", default_catalog(), "ml.g5.48xlarge", 8, context_tokens=1100)
    weights = 70.55e9 * 2
    budget = 8 * 24e9 - weights * 1.2
    assert fit.kv_budget_bytes == pytest.approx(budget)
    assert fit.max_sequences == int(budget // (327_680 * 1100)) == 62
    assert fit.replicas_per_instance == 1


def test_70b_fp16_does_not_fit_four_a10g_and_8b_runs_one_replica_per_gpu() -> None:
    cat = default_catalog()
    assert fits(PRESETS["llama-3-70b"], "fp16", cat, "g5.12xlarge", 4, context_tokens=1100).max_sequences == 0
    small = fits(PRESETS["llama-3-8b"], "fp16", cat, "g5.12xlarge", 1, context_tokens=1100)
    assert small.replicas_per_instance == 4 and small.max_sequences > 0


def test_max_concurrent_sequences_edges() -> None:
    assert max_concurrent_sequences(-1.0, 100.0, 10) == 0
    assert max_concurrent_sequences(1000.0, 100.0, 10) == 1
    assert max_concurrent_sequences(999.0, 100.0, 10) == 0
