"""Cold starts and standby tiers in the planner: how long each phase of a start takes for a model's weights,
what keeping a replica in each tier costs and how soon it serves, and the tier variants ``plan compare`` adds.

Phase figures (REFERENCES.md): seed 003 gives storage → RAM 30-60 s, RAM → GPU 60-120 s and init 10-30 s for a
140 GB model, and local NVMe 50-70 % faster than object storage; they are used as bandwidths, so they scale
with the weights. Provisioning is what remains of seed 000's 4-8 minutes end to end (140-270 s). A hot standby
wakes in vLLM sleep mode's 3-6 s (vs 47-98 s reload) and keeps its instance (the instance price); a warm one is
a stopped instance with the weights on its NVMe (an EC2 warm pool): it pays its disk and wakes by starting the
instance (an assumed 30-90 s: no published figure in REFERENCES.md) and loading from local disk.

Which tier buys the SLO: a window is judged at P95, so an unforecast burst spoils the window it lands in unless
capacity arrives within 5 % of it (15 s of a 5-minute window). A tier whose wake fits covers such a burst; the
others only help a forecast that started them ahead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ebbtide.config import PoolSpec
from ebbtide.config.sim import PipelineColdStart
from ebbtide.core.standby import COLD, HOT, WARM, StandbySpec, TierOffer, cheapest_tier
from ebbtide.plan.runner import Variant

__all__ = [
    "HOT_WAKE_S",
    "LATE_SHARE",
    "RESTART_S",
    "WARM_DISK_USD_PER_GB_MONTH",
    "PhaseRanges",
    "cold_start_lines",
    "phase_ranges",
    "standby_variants",
    "tier_ranges",
]

HOT_WAKE_S = (3.0, 6.0)  # vLLM sleep mode: wake 3-6 s vs 47-98 s full reload (REFERENCES.md)
RESTART_S = (30.0, 90.0)  # starting a stopped instance: an assumption, not in REFERENCES.md
WARM_DISK_USD_PER_GB_MONTH = 0.08  # an EBS gp3-like volume holding the weights (assumption: list price 2025)
LATE_SHARE = 0.05  # P95 per window: at most 5 % of a window's requests may be late
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class PhaseRanges:
    """(low, high) seconds of each phase of a cold start."""

    provision: tuple[float, float]
    fetch: tuple[float, float]
    fetch_local: tuple[float, float]
    load: tuple[float, float]
    warmup: tuple[float, float]

    @property
    def cold(self) -> tuple[float, float]:
        return _add(self.provision, self.fetch, self.load, self.warmup)

    @property
    def cold_staged(self) -> tuple[float, float]:
        return _add(self.provision, self.fetch_local, self.load, self.warmup)

    @property
    def from_disk(self) -> tuple[float, float]:
        return _add(self.fetch_local, self.load, self.warmup)


def _add(*ranges: tuple[float, float]) -> tuple[float, float]:
    return sum(r[0] for r in ranges), sum(r[1] for r in ranges)


def phase_ranges(weights_gb: float, spec: PipelineColdStart | None = None) -> PhaseRanges:
    """Each phase's range for ``weights_gb`` of weights, from the pipeline model's bandwidths (default: cited)."""
    spec = spec or PipelineColdStart.model_validate({})
    fetch = (weights_gb / spec.fetch_gb_per_s[1], weights_gb / spec.fetch_gb_per_s[0])
    local = (fetch[0] * (1 - spec.local_speedup[1]), fetch[1] * (1 - spec.local_speedup[0]))
    load = (weights_gb / spec.load_gb_per_s[1], weights_gb / spec.load_gb_per_s[0])
    return PhaseRanges(spec.provision_s, fetch, local, load, spec.warmup_s)


def tier_ranges(phases: PhaseRanges, instance_usd_per_h: float, weights_gb: float) -> list[tuple[TierOffer, str]]:
    """Each tier's price per hour and wake range (the offer carries the upper end), with what it is."""
    disk = weights_gb * WARM_DISK_USD_PER_GB_MONTH / HOURS_PER_MONTH
    warm = _add(RESTART_S, phases.from_disk)
    return [
        (TierOffer(COLD, 0.0, phases.cold[1]), f"{_span(phases.cold)}: a full cold start, nothing kept"),
        (TierOffer(WARM, round(disk, 4), warm[1]),
         f"{_span(warm)}: instance start (assumed {_span(RESTART_S)}) + load from its NVMe; pays its disk"),
        (TierOffer(HOT, instance_usd_per_h, HOT_WAKE_S[1]),
         f"{_span(HOT_WAKE_S)}: vLLM sleep mode level 1 / llama.cpp SIGCONT; pays its instance"),
    ]  # fmt: skip


def _span(r: tuple[float, float]) -> str:
    return f"{r[0]:.0f}-{r[1]:.0f} s"


def cold_start_lines(weights_bytes: float, instance_usd_per_h: float, window_s: float = 300.0) -> list[str]:
    """What ``ebbtide plan`` prints about cold starts and standby tiers for a model's weights on an instance."""
    weights_gb = weights_bytes / 1e9
    p = phase_ranges(weights_gb)
    budget_s = LATE_SHARE * window_s
    tiers = tier_ranges(p, instance_usd_per_h, weights_gb)
    best = cheapest_tier([offer for offer, _ in tiers], budget_s)
    lines = [
        f"Cold start of {weights_gb:.0f} GB of weights (seed 003's phases as bandwidths; provision = seed 000's "
        "4-8 min minus them):",
        f"  provision {_span(p.provision)} + fetch from object storage {_span(p.fetch)} + load to GPU "
        f"{_span(p.load)} + warm-up {_span(p.warmup)} = {_span(p.cold)}",
        f"  weights staged on local NVMe (50-70% faster): fetch {_span(p.fetch_local)}, cold start "
        f"{_span(p.cold_staged)}",
        "Standby tiers (one replica kept ready):",
        *(f"  {o.tier:<5} ${o.hourly_usd:>8.4f}/h  wake {what}" for o, what in tiers),
        f"  An unforecast burst spoils its {window_s / 60:g}-minute window at P95 unless capacity arrives within "
        f"{LATE_SHARE:.0%} of it ({budget_s:g} s).",
    ]
    if best is None:
        lines.append("  No tier wakes that fast: start capacity ahead of the forecast (predictive).")
    else:
        lines += [
            f"  Cheapest tier that buys the SLO: {best.tier} (${best.hourly_usd:g}/h per replica kept); warm and cold",
            "  only help when started ahead. `ebbtide plan compare` measures each tier on your traffic.",
        ]
    return lines


def standby_variants(pool: PoolSpec, label: str) -> list[Variant]:
    """The configured pool with its standby swapped: cold only, a warm standby, a hot standby (the configured
    count, at least 1). A variant equal to the configured pool is left out."""
    configured = pool.scaling.standby.wish()
    same = (configured.tier if configured.wanted else COLD, configured.wanted)
    count = max(1, configured.count)
    out = []
    for tier, name in ((COLD, "cold only"), (WARM, "warm standby"), (HOT, "hot standby")):
        wish = StandbySpec(tier=tier, count=0 if tier == COLD else count)
        if (tier, wish.wish().wanted) == same:
            continue
        scaling = pool.scaling.model_copy(update={"standby": wish})
        suffix = "" if tier == COLD else f" x{count}"
        out.append(Variant(f"{label}, {name}{suffix}", pool.model_copy(update={"scaling": scaling})))
    return out
