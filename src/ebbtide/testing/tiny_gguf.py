"""A tiny random-weight llama-architecture GGUF that a real llama.cpp server loads in ~0.1 s.

The weights are noise, so the text is gibberish, but every code path of the server (slots, streaming,
metrics, ``max_tokens``) is real. The output projection gives control and byte tokens a zero row while
ordinary tokens get large random rows: end-of-sequence is then practically never sampled, so a request
generates exactly ``max_tokens`` tokens, and only printable pieces are ever emitted (no invalid UTF-8 in
responses).

Requires the ``gguf`` package (a dev dependency).
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

__all__ = ["TINY_N_CTX_TRAIN", "make_tiny_llama_gguf"]

TINY_N_CTX_TRAIN = 8192

_N_EMBD = 64
_N_LAYER = 2
_N_HEAD = 4
_N_FF = 128
_WORDS = " ".join(
    [
        "the a an of to and in is it that for on with as was at by be this from or are not but have",
        "tide ebb flow sea wave moon shore sand salt boat net fish gull wind rain sun cloud storm calm deep",
        "hello world yes no one two three four five six seven eight nine ten red blue green gold grey",
    ]
).split()


def _vocab() -> tuple[list[str], list[float], list[int]]:
    from gguf import TokenType

    tokens = ["<unk>", "<s>", "</s>"]
    types = [int(TokenType.UNKNOWN), int(TokenType.CONTROL), int(TokenType.CONTROL)]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [int(TokenType.BYTE)] * 256
    pieces = ["▁", *sorted(set(string.ascii_letters + string.digits + string.punctuation))]
    pieces += [f"▁{w}" for w in _WORDS]
    tokens += pieces
    types += [int(TokenType.NORMAL)] * len(pieces)
    scores = [0.0] * (3 + 256) + [float(len(p)) - 10.0 for p in pieces]
    return tokens, scores, types


def make_tiny_llama_gguf(path: Path, seed: int = 0) -> Path:
    """Write the tiny model to ``path`` (parents created) and return ``path``. Same seed, same bytes."""
    import gguf

    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("ebbtide-tiny-llama")
    w.add_context_length(TINY_N_CTX_TRAIN)
    w.add_embedding_length(_N_EMBD)
    w.add_block_count(_N_LAYER)
    w.add_feed_forward_length(_N_FF)
    w.add_head_count(_N_HEAD)
    w.add_head_count_kv(_N_HEAD)
    w.add_rope_dimension_count(_N_EMBD // _N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def rand(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(n_vocab, _N_EMBD, scale=1.0))
    w.add_tensor("output_norm.weight", np.ones(_N_EMBD, dtype=np.float32))
    output = rand(n_vocab, _N_EMBD, scale=1.0)
    output[: 3 + 256] = 0.0
    w.add_tensor("output.weight", output)
    for i in range(_N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(_N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(_N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", rand(_N_EMBD, _N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(_N_FF, _N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(_N_FF, _N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(_N_EMBD, _N_FF))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
