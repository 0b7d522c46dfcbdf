"""``ebbtide.yaml``: pydantic models (unknown keys rejected), loading with errors naming file and field.

Defaults live here and only here. Usage: ``cfg = load_config(path)`` or ``default_config()`` for the embedded pool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from ebbtide.config.base import ConfigError
from ebbtide.config.base import Spec as _Spec
from ebbtide.config.engines import (
    EngineSpec,
    LlamaCppEngineSpec,
    OpenAIEngineSpec,
    TgiEngineSpec,
    VllmEngineSpec,
)
from ebbtide.config.pools import (
    CandidateSpec,
    PoolRolloutSpec,
    PoolSpec,
    RayPlacementSpec,
    ReplicaSpec,
    ScalingSpec,
    SpotSpec,
    VariantSpec,
)
from ebbtide.config.sim import SIM_UNION_TAGS
from ebbtide.config.state import StateSpec
from ebbtide.core.controller import Controller, ScalingRules
from ebbtide.core.policies import POLICY_SPECS, PolicySpec
from ebbtide.core.policies.predictive import PredictivePolicy
from ebbtide.core.standby import TierOffer

__all__ = [
    "CandidateSpec",
    "Config",
    "ConfigError",
    "EngineSpec",
    "GatewaySpec",
    "LlamaCppEngineSpec",
    "LocalProviderSpec",
    "OpenAIEngineSpec",
    "PoolRolloutSpec",
    "PoolSpec",
    "ProviderSpec",
    "RayPlacementSpec",
    "RayProviderSpec",
    "ReplicaSpec",
    "ScalingSpec",
    "SloSpec",
    "SpotSpec",
    "StateSpec",
    "TgiEngineSpec",
    "VariantSpec",
    "VllmEngineSpec",
    "build_controller",
    "default_config",
    "default_threads_per_replica",
    "format_validation_error",
    "load_config",
]


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
    state: StateSpec = Field(
        default_factory=StateSpec, description="What gateways share: embedded SQLite (one process) or Redis (several)."
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
    policies = [spec.build() for spec in specs]
    for policy in policies:  # a predictive policy with standby: auto chooses among the pool's tiers
        if isinstance(policy, PredictivePolicy):
            policy.standby_offers = tier_offers(pool)
    return Controller(pool.name, rules, policies)


def tier_offers(pool: PoolSpec) -> tuple[TierOffer, ...]:
    """The pool's standby tiers as offers: price per replica-hour (unset: the replica's) and wake time."""
    return tuple(
        TierOffer(name, tier.hourly_usd if tier.hourly_usd is not None else pool.replica.hourly_usd, tier.wake_s)
        for name, tier in (("hot", pool.replica.standby.hot), ("warm", pool.replica.standby.warm))
    )
