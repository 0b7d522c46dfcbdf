"""The hardware catalog: GPUs, instances, prices and published calibration points, each with its source.

The figures live in ``hardware.yaml`` next to this module; :func:`load_catalog` validates them with pydantic
(unknown keys are errors) and returns a frozen :class:`Catalog`. Nothing here computes latency or cost.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "Calibration",
    "Catalog",
    "CatalogError",
    "Cited",
    "CitedOptional",
    "GpuSpec",
    "InstanceSpec",
    "NamedPrice",
    "default_catalog",
    "load_catalog",
]


class CatalogError(ValueError):
    """The catalog file is missing, not YAML, or does not validate; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cited(_Strict):
    """A number and the document it comes from; ``estimate`` marks a derived figure not read in a source."""

    value: float = Field(gt=0)
    source: str = Field(min_length=1)
    note: str | None = None
    estimate: bool = False


class CitedOptional(_Strict):
    """Like :class:`Cited`, but ``value: null`` records that the source says the mode does not exist."""

    value: float | None = Field(default=None, gt=0)
    source: str = Field(min_length=1)
    note: str | None = None
    estimate: bool = False


class GpuSpec(_Strict):
    """One GPU. Compute figures are dense (no sparsity); ``fp8_tflops`` is None where FP8 is not native."""

    name: str
    memory_gb: Cited
    bandwidth_gb_s: Cited
    bf16_tflops: Cited
    fp8_tflops: CitedOptional
    int8_tops: Cited
    interconnect_gb_s: Cited

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb.value * 1e9

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_gb_s.value * 1e9


class InstanceSpec(_Strict):
    """One rentable machine: ``gpu_count`` GPUs of catalog type ``gpu`` at ``hourly_usd`` on demand."""

    platform: Literal["ec2", "sagemaker"]
    gpu: str
    gpu_count: Cited
    hourly_usd: Cited

    @property
    def gpus(self) -> int:
        return int(self.gpu_count.value)


class NamedPrice(_Strict):
    """A price quoted somewhere other than the list (e.g. a seed's rounded figure), kept to reproduce it."""

    instance: str
    hourly_usd: Cited


class Calibration(_Strict):
    """A published latency measurement used to derive a default efficiency."""

    name: str
    model: str
    precision: str
    gpu: str
    gpus: int = Field(ge=1)
    tpot_ms: Cited


class Catalog(_Strict):
    """The validated catalog. ``sources`` is the list of documents the figures cite."""

    sources: dict[str, str]
    gpus: dict[str, GpuSpec]
    instances: dict[str, InstanceSpec]
    named_prices: dict[str, NamedPrice]
    calibration: list[Calibration]

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalog:
        for name, inst in self.instances.items():
            if inst.gpu not in self.gpus:
                raise ValueError(f"instances.{name}.gpu = {inst.gpu!r}: must be one of {sorted(self.gpus)}")
            if inst.gpu_count.value != int(inst.gpu_count.value):
                raise ValueError(f"instances.{name}.gpu_count = {inst.gpu_count.value}: must be an integer")
        for name, price in self.named_prices.items():
            if price.instance not in self.instances:
                raise ValueError(f"named_prices.{name}.instance = {price.instance!r}: unknown instance")
        for cal in self.calibration:
            if cal.gpu not in self.gpus:
                raise ValueError(f"calibration {cal.name}: gpu = {cal.gpu!r}: unknown GPU")
        return self

    def instance(self, name: str) -> InstanceSpec:
        return self.instances[name]

    def gpu_of(self, instance: str) -> GpuSpec:
        return self.gpus[self.instances[instance].gpu]

    def prices_for(self, instance: str) -> dict[str, NamedPrice]:
        return {k: p for k, p in self.named_prices.items() if p.instance == instance}


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file; raise :class:`CatalogError` naming the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise CatalogError(f"{path}: {problems}") from None


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with ebbtide (``plan/hardware.yaml``), loaded once."""
    with resources.as_file(resources.files("ebbtide.plan") / "hardware.yaml") as path:
        return load_catalog(path)
