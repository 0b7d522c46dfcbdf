"""``ebbtide.yaml``: pydantic models (unknown keys rejected), loading with errors naming file and field.

Defaults live here and only here. Usage: ``cfg = load_config(path)`` or ``default_config()`` for the embedded pool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ebbtide.core.controller import Controller, ScalingRules
from ebbtide.core.cost import Price
from ebbtide.core.policies import POLICY_SPECS, AnyPolicySpec, PolicySpec
from ebbtide.core.rollout import RolloutSpec
from ebbtide.sim.spec import SIM_UNION_TAGS, SimSpec, VariantSimSpec

__all__ = [
    "Config",
    "ConfigError",
    "EngineSpec",
    "GatewaySpec",
    "LlamaCppEngineSpec",
    "OpenAIEngineSpec",
    "PoolSpec",
    "ProviderSpec",
    "RayPlacementSpec",
    "RayProviderSpec",
    "ReplicaSpec",
    "ScalingSpec",
    "SloSpec",
    "SpotSpec",
    "VllmEngineSpec",
    "build_controller",
    "default_config",
    "default_threads_per_replica",
    "load_config",
]


class ConfigError(Exception):
    """A config problem, already phrased for the user (file, field, what is wrong)."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class SpotSpec(_Spec):
    hourly_usd: float = Field(ge=0, description="Spot price per replica-hour.")
    notice_s: float = Field(120.0, gt=0, description="Termination notice: time to drain before the replica dies.")
    min_on_demand: int = Field(
        0, ge=0, description="On-demand floor: this many serving replicas are on-demand, the rest spot."
    )


class ReplicaSpec(_Spec):
    startup_timeout_s: float = Field(600.0, gt=0, description="Model-load timeout: not ready by then → replaced.")
    health_interval_s: float = Field(2.0, gt=0, description="Seconds between health checks of ready replicas.")
    health_failures: int = Field(3, ge=1, description="Consecutive failed health checks before replacement.")
    drain_timeout_s: float = Field(120.0, ge=0, description="Scale-in: wait this long for in-flight requests.")
    stop_grace_s: float = Field(10.0, ge=0, description="SIGTERM → SIGKILL grace, seconds.")
    orphan_grace_s: float = Field(
        15.0, gt=0, description="A replica whose controller lease is not renewed this long stops itself."
    )
    cold_start_estimate_s: float | None = Field(None, gt=0, description="Used until cold starts are measured.")
    hourly_usd: float = Field(0.0, ge=0, description="Price of one replica-hour, for cost.")
    billing: Literal["per_second", "per_hour"] = Field("per_second", description="Billing granularity.")
    spot: SpotSpec | None = Field(None, description="Spot capacity: price and termination notice.")


class ScalingSpec(_Spec):
    min_replicas: int = Field(1, ge=0, description="Static lower bound (0 = scale to zero when idle).")
    max_replicas: int = Field(3, ge=1, description="Static upper bound.")
    scale_out_cooldown_s: float = Field(60.0, ge=0, description="After a scale-out, only a larger one may follow.")
    scale_in_cooldown_s: float = Field(180.0, ge=0, description="Scale-in waits this long after any scaling.")
    scale_to_zero_after_s: float = Field(300.0, ge=0, description="With min 0: idle this long before going to 0.")
    tick_s: float = Field(1.0, gt=0, description="Controller period in policy seconds.")
    policies: list[AnyPolicySpec] = Field(
        default_factory=list, description="Scale out if any says out, in only if all agree (docs/policies.md)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas = {self.max_replicas}: must be >= min_replicas = {self.min_replicas}")
        return self


class VariantSpec(_Spec):
    """Another shape of the same pool (e.g. a smaller quantised model overnight), chosen by a schedule action."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Named by `variant:`.")
    engine: EngineSpec | None = Field(None, description="What replicas of this variant run; unset = pool's engine.")
    hourly_usd: float | None = Field(None, ge=0, description="Price per replica-hour; unset = replica.hourly_usd.")
    sim: VariantSimSpec | None = Field(None, description="The twin's model of this variant; unset = the pool's.")


class CandidateSpec(_Spec):
    engine: EngineSpec | None = Field(None, description="What candidate replicas run; unset = the pool's engine.")
    hourly_usd: float | None = Field(None, ge=0, description="Price per candidate replica-hour.")
    sim: VariantSimSpec | None = Field(None, description="The twin's model of the candidate; unset = the pool's.")


class PoolRolloutSpec(RolloutSpec):
    candidate: CandidateSpec = Field(default_factory=CandidateSpec, description="The version being rolled out.")


class RayPlacementSpec(_Spec):
    """Where one replica of this pool may run on a Ray cluster (``provider.kind: ray`` only)."""

    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica (default llama.cpp threads).")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per replica; default engine.tensor_parallel for vllm, else 0."
    )
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom resources per replica (see `ray start --resources`)."
    )
    strategy: Literal["spread", "pack"] = Field(
        "spread", description="spread: replicas on different nodes when possible; pack: Ray's default."
    )

    @model_validator(mode="after")
    def _positive_resources(self) -> RayPlacementSpec:
        for name, amount in self.resources.items():
            if amount <= 0:
                raise ValueError(f"resources.{name} = {amount}: must be > 0")
        return self


class PoolSpec(_Spec):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$", description="Model id clients send.")
    engine: EngineSpec = Field(default_factory=LlamaCppEngineSpec, description="What each replica runs.")
    replica: ReplicaSpec = Field(default_factory=ReplicaSpec, description="Replica lifecycle and price.")
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Bounds, cooldowns, policies.")
    fallback: str | None = Field(None, description="Pool that takes overflow when this one would miss the SLO.")
    ray: RayPlacementSpec | None = Field(None, description="Per-replica Ray resources (provider kind ray).")
    fallback_classes: list[str] = Field(
        default_factory=lambda: ["interactive"], description="Priority classes allowed to overflow to `fallback`."
    )
    rollout: PoolRolloutSpec | None = Field(None, description="Shadow, canary or blue-green of a candidate.")
    variants: list[VariantSpec] = Field(
        default_factory=list, description="Vertical scaling: schedule actions pick one by `variant:`."
    )
    sim: SimSpec | None = Field(None, description="Digital-twin model of this pool (`ebbtide simulate` only).")

    def price(self, variant: str = "default", spot: bool = False) -> Price:
        """One replica's price: its variant's (or the candidate's) hourly rate; a spot replica pays the spot rate,
        scaled by the variant's rate over the pool's (the spot discount carries over to other shapes)."""
        hourly = self.replica.hourly_usd
        if variant == "candidate" and self.rollout is not None and self.rollout.candidate.hourly_usd is not None:
            hourly = self.rollout.candidate.hourly_usd
        for v in self.variants:
            if v.name == variant and v.hourly_usd is not None:
                hourly = v.hourly_usd
        spot_usd = None
        if spot and self.replica.spot is not None:
            base = self.replica.hourly_usd
            spot_usd = self.replica.spot.hourly_usd * (hourly / base if base > 0 else 1.0)
        return Price(hourly, self.replica.billing, spot_usd)


class SloSpec(_Spec):
    ttft_p95_s: float = Field(0.5, gt=0, description="P95 time to first token, seconds.")
    latency_p95_s: float = Field(3.0, gt=0, description="P95 end-to-end latency, seconds.")
    window_s: float = Field(300.0, gt=0, description="Window over which P95 is judged (SLO attainment).")


class GatewaySpec(_Spec):
    host: str = Field("127.0.0.1", description="Bind address; `--host` overrides.")
    port: int = Field(8080, ge=0, le=65535, description="Port; `--port` overrides.")
    max_queue: int = Field(1000, ge=1, description="Requests held while every slot is busy; 429 beyond.")
    request_timeout_s: float = Field(600.0, gt=0, description="Longest an upstream request may take.")
    default_deadline_s: float = Field(120.0, gt=0, description="Longest a request waits for a slot by default.")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    retries: int = Field(2, ge=0, description="Retries on another replica when one fails before the first byte.")
    priority_classes: list[str] = Field(
        default_factory=lambda: ["interactive", "batch"], min_length=1,
        description="Queue classes, highest priority first; API keys name one (unknown classes rank last).",
    )
    auth: Literal["none", "keys"] | None = Field(
        None,
        description="'keys': every request needs an active API key (none active = all 401, never open); 'none': "
        "open, refused on a non-loopback host without `--insecure`; unset: 'keys' once any key was ever created "
        "in the state dir or when the host is not loopback, else 'none' until the first key is created. "
        "`--auth` overrides.",
    )
    anonymous_class: str = Field("interactive", description="Class of requests when auth is 'none'.")


class LocalProviderSpec(_Spec):
    kind: Literal["local"] = "local"


class RayProviderSpec(_Spec):
    kind: Literal["ray"] = "ray"
    address: str = Field(
        "auto", min_length=1, description="'auto' (the cluster `ray start` made here) or the head HOST:PORT."
    )
    namespace: str = Field("ebbtide", min_length=1, description="Ray namespace of the replica actors.")


ProviderSpec = Annotated[
    Union[LocalProviderSpec, RayProviderSpec],  # noqa: UP007
    Field(discriminator="kind"),
]


class Config(_Spec):
    pools: list[PoolSpec] = Field(min_length=1, description="One pool per served model id.")
    slo: SloSpec = Field(default_factory=SloSpec, description="Service-level objective (twin and reports).")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec, description="HTTP front end.")
    provider: ProviderSpec = Field(
        default_factory=LocalProviderSpec, description="Where replicas run: local processes or a Ray cluster."
    )

    @model_validator(mode="after")
    def _pool_refs(self) -> Config:
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pools: duplicate name(s) {dupes}")
        for p in self.pools:
            if p.fallback is not None and (p.fallback not in names or p.fallback == p.name):
                raise ValueError(f"pools[{p.name}].fallback = {p.fallback!r}: must name another pool")
            _check_variants(p)
        return self

    @model_validator(mode="after")
    def _placement_needs_ray(self) -> Config:
        if self.provider.kind != "ray":
            for p in self.pools:
                if p.ray is not None:
                    raise ValueError(f"pools[{p.name}].ray: only used with `provider: {{kind: ray}}`")
        return self

    def pool(self, name: str) -> PoolSpec:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)


def _check_variants(pool: PoolSpec) -> None:
    names = [v.name for v in pool.variants]
    if "default" in names or len(set(names)) != len(names):
        raise ValueError(f"pools[{pool.name}].variants: names must be unique and not 'default' (the pool's engine)")
    for policy in pool.scaling.policies:
        for action in getattr(policy, "actions", []):
            if action.variant is not None and action.variant != "default" and action.variant not in names:
                raise ValueError(
                    f"pools[{pool.name}] schedule action {action.label!r}: variant = {action.variant!r} "
                    f"is not declared under variants ({', '.join(names) or 'none'})"
                )


def default_threads_per_replica(max_replicas: int, cores: int | None = None) -> int:
    """Threads × replicas must not exceed the cores: oversubscribed llama.cpp replicas collapse (measured ~20×)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, max_replicas))


def default_config() -> Config:
    """The embedded default: one llama.cpp pool of the packaged Gemma 3 270M, sized for a 2-core machine."""
    return Config.model_validate(
        {
            "pools": [
                {
                    "name": "default",
                    "engine": {"kind": "llamacpp", "model": "default", "slots": 4, "args": ["n_predict=512"]},
                    "replica": {"startup_timeout_s": 120, "drain_timeout_s": 60, "cold_start_estimate_s": 5},
                    "scaling": {
                        "min_replicas": 1,
                        "max_replicas": 2,
                        "policies": [
                            {"kind": "target_tracking", "target": 30},
                            {"kind": "queue_depth", "target": 4},
                        ],
                    },
                }
            ]
        }
    )


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with a `pools:` list")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc


def format_validation_error(path: Path | str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid config ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" = {value!r}"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see docs/config.md)"
        lines.append(f"  `{loc}`{shown}: {msg}")
    return "\n".join(lines)


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and part in _UNION_TAGS


_UNION_TAGS = {"llamacpp", "vllm", "tgi", "openai", *POLICY_SPECS, *SIM_UNION_TAGS}


def build_controller(pool: PoolSpec) -> Controller:
    s = pool.scaling
    rules = ScalingRules(s.min_replicas, s.max_replicas, s.scale_out_cooldown_s, s.scale_in_cooldown_s,
                         s.scale_to_zero_after_s)
    specs: list[PolicySpec] = list(s.policies)
    return Controller(pool.name, rules, [spec.build() for spec in specs])
