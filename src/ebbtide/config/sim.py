"""The ``sim:`` block of a pool: how the twin models replicas (service, cold start, startup failures, class mix).

Only the simulator reads it; ``serve`` ignores it, so one ``ebbtide.yaml`` runs in both. It is part of the config
(``PoolSpec.sim``, ``VariantSpec.sim``), so it lives with the config's other sections; defaults for the twin live
here, next to their descriptions (documented in docs/config.md)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SIM_UNION_TAGS",
    "ColdStartSpec",
    "EmpiricalColdStart",
    "FixedColdStart",
    "PhasedColdStart",
    "PipelineColdStart",
    "RooflineService",
    "SeedAssumedService",
    "ServiceSpec",
    "SharedHostSpec",
    "SimSpec",
    "TableService",
    "UniformColdStart",
    "VariantSimSpec",
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedAssumedService(_Spec):
    """'As assumed by the seed': a replica serves ``rps_per_replica`` typical requests inside the SLO."""

    kind: Literal["seed_assumed"] = "seed_assumed"
    rps_per_replica: float = Field(10.0, gt=0, description="Requests/s one replica serves at nominal load.")
    typical_latency_s: float = Field(
        1.5,
        gt=0,
        description="End-to-end seconds of a typical request at nominal load (P95 then depends on spread).",
    )
    ttft_s: float = Field(0.25, gt=0, description="Time to first token of a typical prompt at nominal load.")
    prompt_tokens: int = Field(800, ge=1, description="Typical prompt length the figures refer to.")
    output_tokens: int = Field(300, ge=2, description="Typical output length the figures refer to.")

    @model_validator(mode="after")
    def _ttft_fits(self) -> SeedAssumedService:
        if self.ttft_s >= self.typical_latency_s:
            raise ValueError(
                f"ttft_s = {self.ttft_s}: must be < typical_latency_s = {self.typical_latency_s}"
            )
        return self


class TableService(_Spec):
    """A calibration table written by ``ebbtide calibrate`` (path relative to the config file)."""

    kind: Literal["table"] = "table"
    path: str = Field(
        min_length=1, description="JSON table from `ebbtide calibrate`; relative to the config file."
    )
    percentile: Literal["p50", "p95"] = Field(
        "p50", description="Which measured percentile drives the model."
    )
    spread: bool = Field(
        True,
        description="With p50: draw each request's TTFT and TPOT from a lognormal fitted to the level's "
        "p50 and p95 (seeded); false or p95: the same service time for every request at a batch size.",
    )


class RooflineService(_Spec):
    """Bandwidth/compute roofline of a hardware profile; the plan issue extends the catalog."""

    kind: Literal["roofline"] = "roofline"
    hardware: str = Field("a10g", description="GPU name in the catalog (sim/service.py HARDWARE).")
    gpus: int = Field(8, ge=1, description="GPUs per replica (tensor parallel).")
    params_b: float = Field(70.0, gt=0, description="Model parameters, billions.")
    bytes_per_param: float = Field(2.0, gt=0, description="2 = FP16/BF16, 1 = FP8/INT8, 0.5 = INT4.")
    kv_bytes_per_token: float = Field(
        327_680.0, ge=0, description="KV cache bytes per token (Llama 3 70B FP16)."
    )
    context_tokens: int = Field(1100, ge=1, description="Mean context held per sequence during decode.")
    efficiency: float = Field(0.7, gt=0, le=1, description="Fraction of peak bandwidth/FLOPs achieved.")


ServiceSpec = Annotated[
    Union[SeedAssumedService, TableService, RooflineService],  # noqa: UP007
    Field(discriminator="kind"),
]


class PhasedColdStart(_Spec):
    """Seed 003's phases, each uniform in [low, high] seconds: storage→RAM, RAM→GPU, init."""

    kind: Literal["phases"] = "phases"
    storage_to_ram_s: tuple[float, float] = Field((30.0, 60.0), description="Seed 003: 30-60 s.")
    ram_to_gpu_s: tuple[float, float] = Field((60.0, 120.0), description="Seed 003: 60-120 s.")
    init_s: tuple[float, float] = Field((10.0, 30.0), description="Seed 003: 10-30 s.")

    @model_validator(mode="after")
    def _ranges(self) -> PhasedColdStart:
        for name in ("storage_to_ram_s", "ram_to_gpu_s", "init_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} = [{low}, {high}]: must be 0 <= low <= high")
        return self


def _range(name: str, value: tuple[float, float], positive: bool = False) -> None:
    low, high = value
    if not (low > 0 if positive else low >= 0) or high < low:
        raise ValueError(f"{name} = [{low}, {high}]: must be {'0 <' if positive else '0 <='} low <= high")


class PipelineColdStart(_Spec):
    """A cold start as its phases, each uniform in its range: provision the node, fetch the weights at a
    bandwidth (from object storage, or from the node's disk when staged), load them onto the GPUs at a bandwidth,
    warm up. Defaults: seed 003's phases for a 140 GB model (REFERENCES.md); ``provision_s`` is what remains of
    seed 000's 4-8 minutes end to end after them (instance start, image pull, engine process)."""

    kind: Literal["pipeline"] = "pipeline"
    weights_gb: float = Field(141.0, gt=0, description="Weights to fetch and load, GB (Llama 3 70B FP16: 141).")
    provision_s: tuple[float, float] = Field(
        (140.0, 270.0), description="Node and process start, s (seed 000's 240-480 s minus seed 003's phases)."
    )
    fetch_gb_per_s: tuple[float, float] = Field(
        (2.35, 4.7), description="Object storage → RAM, GB/s (seed 003: 30-60 s for 140 GB)."
    )
    staged: bool = Field(False, description="The weights are already on the node's disk (fetched at local speed).")
    local_speedup: tuple[float, float] = Field(
        (0.5, 0.7), description="Local NVMe is this much faster than object storage (seed 003: 50-70%)."
    )
    load_gb_per_s: tuple[float, float] = Field(
        (1.17, 2.35), description="RAM → GPU, GB/s (seed 003: 60-120 s for 140 GB)."
    )
    warmup_s: tuple[float, float] = Field(
        (10.0, 30.0), description="Kernels, KV cache, first token (seed 003: 10-30 s)."
    )

    @model_validator(mode="after")
    def _ranges(self) -> PipelineColdStart:
        _range("provision_s", self.provision_s)
        _range("warmup_s", self.warmup_s)
        for name in ("fetch_gb_per_s", "load_gb_per_s"):
            _range(name, getattr(self, name), positive=True)
        low, high = self.local_speedup
        if not 0 <= low <= high < 1:
            raise ValueError(f"local_speedup = [{low}, {high}]: must be 0 <= low <= high < 1")
        return self


class UniformColdStart(_Spec):
    kind: Literal["uniform"] = "uniform"
    low_s: float = Field(ge=0, description="Shortest cold start, seconds.")
    high_s: float = Field(ge=0, description="Longest cold start, seconds (seed 000: 240-480).")

    @model_validator(mode="after")
    def _range(self) -> UniformColdStart:
        if self.high_s < self.low_s:
            raise ValueError(f"high_s = {self.high_s}: must be >= low_s = {self.low_s}")
        return self


class FixedColdStart(_Spec):
    kind: Literal["fixed"] = "fixed"
    seconds: float = Field(ge=0, description="Every cold start takes exactly this long.")


class EmpiricalColdStart(_Spec):
    kind: Literal["empirical"] = "empirical"
    samples_s: list[float] = Field(min_length=1, description="Measured cold starts; each start draws one.")


ColdStartSpec = Annotated[
    Union[PhasedColdStart, PipelineColdStart, UniformColdStart, FixedColdStart, EmpiricalColdStart],  # noqa: UP007
    Field(discriminator="kind"),
]


class SharedHostSpec(_Spec):
    """Replicas co-located on one host: while the threads of busy (serving or loading) replicas exceed the
    cores left to them, every replica's prefill and decode slow down in proportion."""

    cores: float = Field(gt=0, description="CPU cores of the shared host.")
    reserved_cores: float = Field(
        0.0, ge=0, description="Cores taken by other processes on the host (gateway, load client)."
    )
    threads_per_replica: float | None = Field(
        None, gt=0, description="Threads a busy replica runs; default engine.threads, else cores // max_replicas."
    )

    @model_validator(mode="after")
    def _room(self) -> SharedHostSpec:
        if self.reserved_cores >= self.cores:
            raise ValueError(f"reserved_cores = {self.reserved_cores}: must be < cores = {self.cores}")
        return self


class SimSpec(_Spec):
    service: ServiceSpec = Field(
        default_factory=lambda: SeedAssumedService.model_validate({}), description="Replica service model."
    )
    cold_start: ColdStartSpec = Field(
        default_factory=lambda: PhasedColdStart.model_validate({}), description="Replica cold start model."
    )
    startup_failure_probability: float = Field(
        0.0, ge=0, le=1, description="Chance a starting replica fails (then replaced); cost is still paid."
    )
    initial_replicas: int | None = Field(
        None, ge=0, description="Warm replicas at t=0 (billed from t=0); default scaling.min_replicas."
    )
    initial_standby: int | None = Field(
        None, ge=0, description="Standby replicas parked at t=0 (of scaling.standby's tier); default its count."
    )
    tz: str | None = Field(
        None,
        description="Time zone of --start and of named traffic profiles; default the schedule's, else UTC.",
    )
    spot_preemptions_per_hour: float = Field(
        0.0, ge=0, description="With replica.spot: termination notices per spot replica-hour (Poisson)."
    )
    host: SharedHostSpec | None = Field(
        None, description="Replicas share one host's cores (e.g. `ebbtide demo`); default: a machine each."
    )
    classes: dict[str, float] = Field(
        default_factory=dict,
        description="Share of arrivals per priority class (e.g. {interactive: 0.8, batch: 0.2}); the twin "
        "reports SLO per class. Default: every request interactive.",
    )

    @model_validator(mode="after")
    def _class_shares(self) -> SimSpec:
        if any(share < 0 for share in self.classes.values()) or (self.classes and sum(self.classes.values()) <= 0):
            raise ValueError(f"classes = {self.classes}: shares must be >= 0 with a positive sum")
        return self


class VariantSimSpec(_Spec):
    """The twin's model of one variant (another shape of the pool, e.g. a smaller model overnight)."""

    service: ServiceSpec | None = Field(None, description="Service model; unset = the pool's.")
    cold_start: ColdStartSpec | None = Field(None, description="Cold start model; unset = the pool's.")


SIM_UNION_TAGS = frozenset(
    {"seed_assumed", "table", "roofline", "phases", "pipeline", "uniform", "fixed", "empirical"}
)
