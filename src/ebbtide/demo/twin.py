"""The twin half of the demo: replay the arrivals the live run sent through ``sim/`` on the policy clock.

The live run mixes two clocks - policies read policy time (``--time-scale``), while engines, cold starts and
drains take wall time. The twin has one clock, so it runs in policy time and every wall duration is stretched
by ``compress``: the calibration table's TTFT/TPOT, the measured cold starts, startup/drain timeouts and the
gateway deadline. Results are converted back to wall seconds, so both columns of the demo's table are in the
units the user saw.

The twin's replicas draw each request's TTFT/TPOT from the calibration's p50-p95 spread and share this
machine's cores (``sim.host``), as the live replicas, the gateway and the load client do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ebbtide.config import Config
from ebbtide.config.sim import SimSpec
from ebbtide.loadtest.arrivals import Arrival
from ebbtide.sim.output import summary
from ebbtide.sim.run import RunOptions, Simulation

__all__ = ["HOST_RESERVED_CORES", "FixedArrivals", "run_twin", "stretch_calibration"]

HOST_RESERVED_CORES = 0.0  # runs saved before the demo measured the gateway's and load client's cores


@dataclass
class FixedArrivals:
    """Exactly these arrivals (seconds after the run's start): the twin sees the requests the gateway saw."""

    times_s: list[float]
    prompt_tokens: list[int]
    output_tokens: list[int]
    name: str = "demo arrivals"

    def chunks(
        self, start_s: float, end_s: float, rng: np.random.Generator
    ) -> Iterator[tuple[list[float], list[int], list[int]]]:
        keep = sum(1 for t in self.times_s if t < end_s - start_s)
        yield self.times_s[:keep], self.prompt_tokens[:keep], self.output_tokens[:keep]


def stretch_calibration(
    table: dict[str, Any], factor: float, prompt_ref_tokens: int | None = None
) -> dict[str, Any]:
    """A calibration table whose times are ``factor`` × longer (wall seconds → policy seconds); with
    ``prompt_ref_tokens``, its TTFTs refer to prompts of that many tokens as the arrivals count them."""
    levels = []
    for lv in table["levels"]:
        levels.append({k: (v * factor if k.endswith("_s") and isinstance(v, int | float) else v)
                       for k, v in lv.items()})
    ref = {} if prompt_ref_tokens is None else {"prompt_tokens": prompt_ref_tokens}
    return {**table, **ref, "levels": levels}


def run_twin(
    cfg: Config, calibration: dict[str, Any], cold_starts_s: Sequence[float], arrivals: Sequence[Arrival],
    *, compress: float, policy_start_epoch_s: float, duration_s: float, initial_replicas: int, work_dir: Path,
    seed: int = 0, prompt_ref_tokens: int | None = None, reserved_cores: float = HOST_RESERVED_CORES,
) -> dict[str, Any]:
    """Runs the twin; returns the sim summary with times in wall seconds (``*_s`` latency fields,
    ``replica_seconds``).

    ``prompt_ref_tokens``: the arrivals' prompt length (in their own count) of the text the calibration sent.
    The table records the server's count of it (with BOS etc.: 18 for the demo's 16), and the twin scales
    TTFT by arrival tokens / reference, so mixing the two counts would make every TTFT ~8% short.

    ``reserved_cores``: the cores the gateway and the load client used during the live traffic (the demo
    measures their CPU time); the twin's replicas share what is left of this machine's cores."""
    c = compress
    table = work_dir / "calibration-policy-time.json"
    table.write_text(json.dumps(stretch_calibration(calibration, c, prompt_ref_tokens)))
    pool = cfg.pools[0]
    cores = float(os.cpu_count() or 1)
    samples = [max(0.01, s * c) for s in cold_starts_s] or [5.0 * c]
    sim_pool = pool.model_copy(update={
        "replica": pool.replica.model_copy(update={
            "startup_timeout_s": pool.replica.startup_timeout_s * c,
            "drain_timeout_s": pool.replica.drain_timeout_s * c,
        }),
        "sim": SimSpec.model_validate({
            "service": {"kind": "table", "path": str(table), "percentile": "p50"},
            "cold_start": {"kind": "empirical", "samples_s": samples},
            "initial_replicas": initial_replicas,
            "host": {"cores": cores, "reserved_cores": min(reserved_cores, cores / 2)},
        }),
    })
    sim_cfg = cfg.model_copy(update={
        "pools": [sim_pool],
        "slo": cfg.slo.model_copy(update={"latency_p95_s": cfg.slo.latency_p95_s * c,
                                          "ttft_p95_s": cfg.slo.ttft_p95_s * c}),
        "gateway": cfg.gateway.model_copy(update={"default_deadline_s": cfg.gateway.default_deadline_s * c}),
    })
    traffic = FixedArrivals([a.at_s * c for a in arrivals], [a.prompt_tokens for a in arrivals],
                            [a.output_tokens for a in arrivals])
    options = RunOptions(policy_start_epoch_s, duration_s * c, seed, None, "UTC")
    sim = Simulation(sim_cfg, sim_pool, traffic, options)
    sim.run()
    out = summary(sim)
    for key in ("latency_p50_s", "latency_p95_s", "latency_p99_s", "ttft_p50_s", "ttft_p95_s"):
        if out[key] is not None:
            out[key] = out[key] / c
    out["replica_seconds"] = out["replica_hours"] * 3600.0 / c
    out["decisions"] = out["scale_outs"] + out["scale_ins"]
    out["timeline"] = {k: list(v) for k, v in sim.results.timeline.items()}
    return out

