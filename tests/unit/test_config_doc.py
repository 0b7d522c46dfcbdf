"""docs/config.md documents every config field: its generated tables must match the models."""

from __future__ import annotations

from pathlib import Path

from ebbtide.configdoc import BEGIN, END, render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_generated_reference_is_current() -> None:
    text = DOC.read_text()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:stop] == render_reference(), "run: python -m ebbtide.configdoc and paste into docs/config.md"


def test_reference_lists_fields_of_every_section() -> None:
    ref = render_reference()
    for field in ("startup_timeout_s", "scale_in_cooldown_s", "max_queue", "ctx_per_slot", "target", "cron",
                  "orphan_grace_s", "ttft_p95_s"):
        assert f"| `{field}` |" in ref
