"""Replica-seconds → dollars: hourly price, per-second or per-hour billing, spot price; unit costs.

A replica is billed from the moment it is requested (the cold start is paid) until it stops. Pure arithmetic:
``replica_cost_usd(seconds, price)``; ``fleet_cost(intervals, price)`` for a whole run; ``unit_costs(...)``.

``CostLedger`` is what both drivers accrue with: each replica opens with its own ``Price`` (its variant's, spot or
on-demand, the pool's billing) and closes when it stops; ``total_usd(now)`` is what has been charged so far (a
per-hour replica pays each started hour). The live ``ebbtide_cost_usd_total`` and the twin's ``cost_usd`` are
both read from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Billing",
    "CostLedger",
    "FleetCost",
    "Price",
    "UnitCosts",
    "billed_seconds",
    "fleet_cost",
    "replica_cost_usd",
    "unit_costs",
]

Billing = Literal["per_second", "per_hour"]
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class Price:
    """What one replica-hour costs. ``spot_hourly_usd`` (if set) replaces the on-demand price."""

    hourly_usd: float
    billing: Billing = "per_second"
    spot_hourly_usd: float | None = None
    minimum_s: float = 0.0

    @property
    def effective_hourly_usd(self) -> float:
        return self.hourly_usd if self.spot_hourly_usd is None else self.spot_hourly_usd


@dataclass(frozen=True, slots=True)
class FleetCost:
    replica_seconds: float
    billed_seconds: float
    cost_usd: float

    @property
    def replica_hours(self) -> float:
        return self.replica_seconds / HOUR_S


@dataclass(frozen=True, slots=True)
class UnitCosts:
    per_1k_requests_usd: float | None
    per_1m_output_tokens_usd: float | None


def billed_seconds(seconds: float, price: Price) -> float:
    """Seconds charged for a replica that ran ``seconds``: rounded up to whole hours for per-hour billing."""
    if seconds < 0:
        raise ValueError(f"seconds = {seconds}: must be >= 0")
    charged = max(seconds, price.minimum_s) if seconds > 0 else 0.0
    if price.billing == "per_hour":
        return math.ceil(charged / HOUR_S - 1e-9) * HOUR_S
    return charged


def replica_cost_usd(seconds: float, price: Price) -> float:
    # Multiply before dividing so whole figures stay exact (5 x 86,400 s x $17 / 3600 = $2,040.00).
    return billed_seconds(seconds, price) * price.effective_hourly_usd / HOUR_S


def fleet_cost(intervals: Iterable[tuple[float, float]], price: Price) -> FleetCost:
    """Cost of replicas that ran over ``(requested_s, stopped_s)`` intervals."""
    run = billed = 0.0
    for start_s, stop_s in intervals:
        if stop_s < start_s:
            raise ValueError(f"interval ({start_s}, {stop_s}): stop before start")
        run += stop_s - start_s
        billed += billed_seconds(stop_s - start_s, price)
    return FleetCost(run, billed, billed * price.effective_hourly_usd / HOUR_S)


def unit_costs(cost_usd: float, requests: int, output_tokens: int) -> UnitCosts:
    return UnitCosts(
        cost_usd * 1000.0 / requests if requests > 0 else None,
        cost_usd * 1_000_000.0 / output_tokens if output_tokens > 0 else None,
    )


class CostLedger:
    """Per-replica billing as replicas open and close. Usage::

        ledger.open("r1", Price(17.0), now_s); ...; ledger.close("r1", now_s); ledger.total_usd(now_s)
    """

    def __init__(self) -> None:
        self._open: dict[str, tuple[float, Price]] = {}
        self.closed_usd = 0.0
        self.closed_replica_s = 0.0

    def open(self, replica_id: str, price: Price, now_s: float) -> None:
        if replica_id in self._open:
            raise ValueError(f"replica {replica_id!r} is already billed")
        self._open[replica_id] = (now_s, price)

    def close(self, replica_id: str, now_s: float) -> None:
        started = self._open.pop(replica_id, None)
        if started is None:
            return
        start_s, price = started
        self.closed_usd += replica_cost_usd(now_s - start_s, price)
        self.closed_replica_s += now_s - start_s

    def reprice(self, replica_id: str, price: Price, now_s: float) -> None:
        """From ``now_s`` the replica pays ``price`` (a standby parked or promoted): what ran so far is billed
        at the old price as its own interval."""
        if replica_id in self._open:
            self.close(replica_id, now_s)
            self._open[replica_id] = (now_s, price)

    def is_open(self, replica_id: str) -> bool:
        return replica_id in self._open

    def total_usd(self, now_s: float) -> float:
        running = sum(replica_cost_usd(max(0.0, now_s - s), p) for s, p in self._open.values())
        return self.closed_usd + running

    def replica_seconds(self, now_s: float) -> float:
        return self.closed_replica_s + sum(max(0.0, now_s - s) for s, _ in self._open.values())
