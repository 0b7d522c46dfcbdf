"""How much headroom does a policy that knows only the past need on a rate trace, and what does it cost?

A rough bound for traces with no weekly shape to learn (ServeGen's m-large): a replica asked for now serves
one cold start from now, so a policy that cannot foresee the trace can at best provision, for each rate step,
the rate it saw one step earlier (persistence) × (1 + headroom). For each headroom this prints the share of
steps whose capacity covered the need, and the replica-steps against an oracle that provisions each step's
own rate. Steps are the trace's own (10 min for ServeGen), replicas ceil(rate / capacity) within the pool's
bounds; queueing, bursts inside a step and the 5-minute SLO windows are ignored, so the twin's figures are
worse than these. Only a forecast of the steps themselves (which the trace's past does not show) does better.

    .venv/bin/python examples/causal_bound.py examples/traces/servegen_m-large_rate_10min.csv \\
        --rate-scale 0.08 --skip-days 7 --capacity 10.32 --max-replicas 5
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

HEADROOMS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def replicas(rate: float, capacity: float, bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    return min(hi, max(lo, math.ceil(rate / capacity - 1e-9)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--rate-column", default="total_rate_req_per_s")
    parser.add_argument("--rate-scale", type=float, default=1.0)
    parser.add_argument("--skip-days", type=float, default=0.0, help="Leave out the learned days")
    parser.add_argument("--step-s", type=float, default=600.0, help="Seconds between the trace's rows")
    parser.add_argument("--capacity", type=float, required=True, help="req/s one replica serves at the SLO")
    parser.add_argument("--min-replicas", type=int, default=1)
    parser.add_argument("--max-replicas", type=int, default=5)
    args = parser.parse_args()

    with args.trace.open() as f:
        rates = [float(row[args.rate_column]) * args.rate_scale for row in csv.DictReader(f)]
    rates = rates[round(args.skip_days * 86_400 / args.step_s) :]
    bounds = (args.min_replicas, args.max_replicas)
    need = [replicas(r, args.capacity, bounds) for r in rates]
    print(f"{len(rates)} steps of {args.step_s:g} s; oracle {sum(need[1:])} replica-steps")
    print("headroom  steps covered  cost x oracle")
    for room in HEADROOMS:
        got = [replicas(rates[i - 1] * (1 + room), args.capacity, bounds) for i in range(1, len(rates))]
        covered = sum(g >= n for g, n in zip(got, need[1:], strict=True)) / len(got)
        print(f"{room:8.0%}  {covered:13.2%}  {sum(got) / sum(need[1:]):13.3f}")
    steps = sorted(rates[i] / rates[i - 1] for i in range(1, len(rates)) if rates[i - 1] > 0)
    quantiles = ", ".join(f"p{q}: x{steps[min(len(steps) - 1, int(q / 100 * len(steps)))]:.2f}" for q in (90, 95, 99))
    print(f"rate step to step: {quantiles}")


if __name__ == "__main__":
    main()
