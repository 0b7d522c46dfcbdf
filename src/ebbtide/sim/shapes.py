"""The twin's model of each shape a pool's replicas can take: the pool's own engine, its variants (e.g. a smaller
model overnight) and a rollout's candidate. Each has a service model and a cold start; unset = the pool's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ebbtide.config import PoolSpec
from ebbtide.config.sim import SimSpec, VariantSimSpec
from ebbtide.core.fleet import CANDIDATE, DEFAULT_VARIANT
from ebbtide.sim.coldstart import ColdStartModel
from ebbtide.sim.service import ServiceModel, service_model

__all__ = ["Shape", "pool_shapes"]


@dataclass(frozen=True, slots=True)
class Shape:
    service: ServiceModel
    cold: ColdStartModel


def pool_shapes(spec: PoolSpec, base_dir: Path | None, service: ServiceModel | None = None) -> dict[str, Shape]:
    """``{variant: Shape}`` with ``"default"`` always present; ``service`` overrides the pool's own model."""
    sim = spec.sim or SimSpec.model_validate({})
    timeout_s, failures = spec.replica.startup_timeout_s, sim.startup_failure_probability
    default = Shape(service or service_model(sim.service, spec.engine.slots, base_dir),
                    ColdStartModel(sim.cold_start, failures, timeout_s))

    def shape(vsim: VariantSimSpec | None, slots: int) -> Shape:
        if vsim is None:
            return default
        model = service_model(vsim.service, slots, base_dir) if vsim.service is not None else default.service
        cold = ColdStartModel(vsim.cold_start, failures, timeout_s) if vsim.cold_start else default.cold
        return Shape(model, cold)

    shapes = {DEFAULT_VARIANT: default}
    for v in spec.variants:
        shapes[v.name] = shape(v.sim, v.engine.slots if v.engine is not None else spec.engine.slots)
    if spec.rollout is not None:
        engine = spec.rollout.candidate.engine
        shapes[CANDIDATE] = shape(spec.rollout.candidate.sim, engine.slots if engine else spec.engine.slots)
    return shapes
