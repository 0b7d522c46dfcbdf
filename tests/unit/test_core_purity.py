"""core/ is pure: no I/O, no asyncio, no clock, no randomness of its own, nothing from the drivers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "src" / "ebbtide" / "core"
FORBIDDEN_MODULES = {"asyncio", "aiohttp", "httpx", "socket", "subprocess", "sqlite3", "time", "os", "threading"}
FORBIDDEN_PACKAGES = (
    "ebbtide.serve", "ebbtide.sim", "ebbtide.providers", "ebbtide.export", "ebbtide.engines", "ebbtide.plan",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_pure(path: Path) -> None:
    imported = _imports(path)
    bad = {m for m in imported if m.split(".")[0] in FORBIDDEN_MODULES or m.startswith(FORBIDDEN_PACKAGES)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
    text = path.read_text()
    for call in ("time.time(", "time.monotonic(", "datetime.now(", "random.random("):
        assert call not in text, f"{path.name} calls {call}"


def test_purity_check_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom ebbtide.serve.app import x\n")
    assert _imports(bad) == {"asyncio", "ebbtide.serve.app"}
