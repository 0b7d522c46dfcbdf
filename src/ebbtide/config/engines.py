"""``engine:``: what each replica runs (llama.cpp, vLLM, TGI, or an already-running OpenAI-compatible server)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from ebbtide.config.base import Spec as _Spec

__all__ = ["EngineSpec", "LlamaCppEngineSpec", "OpenAIEngineSpec", "TgiEngineSpec", "VllmEngineSpec"]


class LlamaCppEngineSpec(_Spec):
    kind: Literal["llamacpp"] = "llamacpp"
    model: str = Field(
        "default",
        description="'default' = the embedded Gemma 3 270M GGUF, a path to a .gguf, or an s3:// or http(s):// URL "
        "that each replica stages into its node's cache before starting (docs/operations.md, Staged weights).",
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$",
        description="Expected sha256 of remote weights (a hit then needs no network); unset = the digest the source "
        "publishes (S3 ChecksumSHA256 or x-amz-meta-sha256, or <url>.sha256).",
    )  # fmt: skip
    cache_limit_gb: float | None = Field(
        None, gt=0,
        description="Size cap of the node's staged-weights cache (least recently used blobs not in use are evicted); "
        "unset = EBBTIDE_MODEL_CACHE_LIMIT_GB, else only free space limits it.",
    )  # fmt: skip
    args: list[str] = Field(default_factory=list, description="Extra llama-server style options (key=value).")
    slots: int = Field(4, ge=1, description="Parallel sequences per replica (llama-server --parallel).")
    threads: int | None = Field(None, ge=1, description="CPU threads per replica; default max(1, cores // max).")
    ctx_per_slot: int = Field(2048, ge=256, description="Context tokens per slot; n_ctx = slots × ctx_per_slot.")

    @model_validator(mode="after")
    def _remote_weights(self) -> LlamaCppEngineSpec:
        from ebbtide.weights.sources import check_url, is_remote

        if not is_remote(self.model):
            if self.sha256 is not None:
                raise ValueError("sha256: only used when model is an s3:// or http(s):// URL")
            return self
        check_url(self.model)  # ValueError naming the URL and the expected form
        return self


class VllmEngineSpec(_Spec):
    kind: Literal["vllm"] = "vllm"
    model: str = Field(description="Hugging Face id or local path of the weights.")
    args: list[str] = Field(default_factory=list, description="Extra `vllm serve` arguments.")
    slots: int = Field(256, ge=1, description="--max-num-seqs.")
    tensor_parallel: int = Field(1, ge=1, description="--tensor-parallel-size.")
    command: str = Field("vllm", description="Executable that provides `vllm serve`.")
    sleep_mode: bool = Field(
        False,
        description="Start with --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1, so a hot standby sleeps at level 1 "
        "(POST /sleep?level=1) and wakes with POST /wake_up; off = a hot standby stays loaded and idle.",
    )


class TgiEngineSpec(_Spec):
    kind: Literal["tgi"] = "tgi"
    model: str = Field(description="Hugging Face id or local path of the weights (--model-id).")
    args: list[str] = Field(default_factory=list, description="Extra text-generation-launcher arguments.")
    slots: int = Field(128, ge=1, description="--max-concurrent-requests.")
    command: str = Field("text-generation-launcher", description="Executable that runs TGI.")


class OpenAIEngineSpec(_Spec):
    kind: Literal["openai"] = "openai"
    url: str = Field(description="Base URL of an already-running OpenAI-compatible server (we never start it).")
    model: str = Field("", description="Upstream model name to send; empty = pass the client's through.")
    slots: int = Field(8, ge=1, description="Requests ebbtide sends at once before queueing.")


EngineSpec = Annotated[
    Union[LlamaCppEngineSpec, VllmEngineSpec, TgiEngineSpec, OpenAIEngineSpec],  # noqa: UP007
    Field(discriminator="kind"),
]


