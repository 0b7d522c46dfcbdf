"""Cold starts: how long a requested replica takes to become ready, and whether it fails on the way.

Models (``sim.cold_start``): seed 003's phases (storage→RAM, RAM→GPU, init; each uniform in its range), a
pipeline (provision, fetch at a bandwidth, load at a bandwidth, warm-up: ``phases_s`` names each), a uniform
range (seed 000: 4-8 min), a fixed time, or measured samples. A start fails with
``startup_failure_probability`` (at a uniform point of its load) or when it would exceed
``replica.startup_timeout_s`` (then it fails at the timeout, as the live fleet kills it). Either way the time
until failure is paid and the fleet asks for a new one."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ebbtide.config.sim import (
    ColdStartSpec,
    EmpiricalColdStart,
    FixedColdStart,
    PhasedColdStart,
    PipelineColdStart,
    UniformColdStart,
)

__all__ = ["ColdStartModel", "StartOutcome", "pipeline_phases_s"]


def pipeline_phases_s(spec: PipelineColdStart, rng: random.Random, from_disk: bool = False) -> dict[str, float]:
    """One draw of each phase, seconds. ``from_disk``: the node exists with the weights on its disk (a warm
    standby waking): no provision, fetch at local speed."""
    fetch_s = spec.weights_gb / rng.uniform(*spec.fetch_gb_per_s)
    if spec.staged or from_disk:
        fetch_s *= 1.0 - rng.uniform(*spec.local_speedup)
    return {
        "provision": 0.0 if from_disk else rng.uniform(*spec.provision_s),
        "fetch": fetch_s,
        "load": spec.weights_gb / rng.uniform(*spec.load_gb_per_s),
        "warmup": rng.uniform(*spec.warmup_s),
    }


@dataclass(frozen=True, slots=True)
class StartOutcome:
    after_s: float
    ready: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ColdStartModel:
    spec: ColdStartSpec
    failure_probability: float = 0.0
    startup_timeout_s: float = float("inf")

    def quantile_s(self, q: float = 0.9, samples: int = 4_000) -> float:
        """The ``q`` quantile of the cold-start time (failures excluded), from a fixed-seed sample."""
        rng = random.Random(12_345)
        draws = sorted(self.sample_s(rng) for _ in range(samples))
        return draws[min(len(draws) - 1, int(q * len(draws)))]

    def sample_s(self, rng: random.Random) -> float:
        spec = self.spec
        if isinstance(spec, PhasedColdStart):
            return sum(
                rng.uniform(lo, hi) for lo, hi in (spec.storage_to_ram_s, spec.ram_to_gpu_s, spec.init_s)
            )
        if isinstance(spec, PipelineColdStart):
            return sum(pipeline_phases_s(spec, rng).values())
        if isinstance(spec, UniformColdStart):
            return rng.uniform(spec.low_s, spec.high_s)
        if isinstance(spec, FixedColdStart):
            return spec.seconds
        assert isinstance(spec, EmpiricalColdStart)
        return rng.choice(spec.samples_s)

    def outcome(self, rng: random.Random) -> StartOutcome:
        load_s = self.sample_s(rng)
        fails = self.failure_probability > 0 and rng.random() < self.failure_probability
        if fails:
            return StartOutcome(
                rng.uniform(0.0, min(load_s, self.startup_timeout_s)), False, "startup failed"
            )
        if load_s > self.startup_timeout_s:
            return StartOutcome(
                self.startup_timeout_s, False, f"not ready within {self.startup_timeout_s:g}s"
            )
        return StartOutcome(load_s, True)

    @property
    def mean_s(self) -> float:
        spec = self.spec
        if isinstance(spec, PhasedColdStart):
            return sum((lo + hi) / 2 for lo, hi in (spec.storage_to_ram_s, spec.ram_to_gpu_s, spec.init_s))
        if isinstance(spec, PipelineColdStart):
            rng = random.Random(12_345)
            return sum(sum(pipeline_phases_s(spec, rng).values()) for _ in range(4_000)) / 4_000
        if isinstance(spec, UniformColdStart):
            return (spec.low_s + spec.high_s) / 2
        if isinstance(spec, FixedColdStart):
            return spec.seconds
        assert isinstance(spec, EmpiricalColdStart)
        return sum(spec.samples_s) / len(spec.samples_s)
