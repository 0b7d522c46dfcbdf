"""examples/causal_bound.py: what provisioning from the last step's rate covers, on traces worked out by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "causal_bound.py"


def _run(tmp_path: Path, rates: list[float], *flags: str) -> dict[str, tuple[str, str]]:
    trace = tmp_path / "rates.csv"
    trace.write_text("r\n" + "".join(f"{r}\n" for r in rates))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(trace), "--rate-column", "r", "--capacity", "10", *flags],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.strip().endswith(tuple("0123456789")) and "%" in line]
    return {row[0]: (row[1], row[2]) for row in rows if len(row) == 3}


def test_a_flat_trace_is_covered_at_no_headroom_for_the_oracles_cost(tmp_path: Path) -> None:
    table = _run(tmp_path, [25.0] * 10)
    assert table["0%"] == ("100.00%", "1.000")


def test_a_step_up_is_missed_without_headroom_and_caught_with_enough(tmp_path: Path) -> None:
    # 15 req/s (2 replicas) for 4 steps, then 25 (3 replicas) for 5: the first step at 25 is provisioned for 15.
    rates = [15.0] * 4 + [25.0] * 5
    table = _run(tmp_path, rates)
    assert table["0%"][0] == "87.50%"  # 7 of the 8 steps after the first
    assert table["100%"][0] == "100.00%"  # 15 x 2 = 30: 3 replicas for the step up
    assert float(table["100%"][1]) > 1.0


def test_learned_days_are_left_out(tmp_path: Path) -> None:
    # One day of 10-minute steps at 25, then a step up: --skip-days 1 measures only the second part.
    rates = [95.0] * 144 + [25.0] * 10
    table = _run(tmp_path, rates, "--skip-days", "1", "--max-replicas", "10")
    assert table["0%"] == ("100.00%", "1.000")
