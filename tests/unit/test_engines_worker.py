"""The worker's pure helpers: extra ``key=value`` arguments onto CommonParams, and lease expiry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xllamacpp

from ebbtide.engines.llamacpp_worker import apply_extra_args, lease_expired


def test_extra_args_are_coerced_to_the_attribute_type() -> None:
    p = xllamacpp.CommonParams()
    apply_extra_args(p, ["cache_prompt=false", "n_predict=64", "--n-batch=256", "sampling.temp=0.25"])
    assert p.cache_prompt is False
    assert p.n_predict == 64
    assert p.n_batch == 256
    assert p.sampling.temp == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("no_such_param=1", "unknown llama.cpp parameter 'no_such_param'"),
        ("nogroup.temp=1", "unknown llama.cpp parameter group 'nogroup'"),
        ("cache_prompt=maybe", "must be true or false"),
        ("n_predict=lots", "must be a int"),
        ("cache_prompt", "expected key=value"),
        ("_private=1", "unknown llama.cpp parameter"),
    ],
)
def test_bad_extra_args_are_named(arg: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_extra_args(xllamacpp.CommonParams(), [arg])


def test_lease_expiry_both_sides_of_the_timeout(tmp_path: Path) -> None:
    lease = tmp_path / "lease"
    lease.touch()
    os.utime(lease, (1000.0, 1000.0))
    assert not lease_expired(lease, timeout_s=5.0, now=1005.0)
    assert lease_expired(lease, timeout_s=5.0, now=1005.01)


def test_missing_lease_is_expired(tmp_path: Path) -> None:
    assert lease_expired(tmp_path / "gone", timeout_s=1e9, now=0.0)


def test_worker_module_imports_stay_light() -> None:
    """Every replica starts through this module: pydantic/aiohttp/config would add ~1.5 s per start."""
    code = (
        "import sys, ebbtide.engines.llamacpp_worker\n"
        "heavy = ('pydantic', 'aiohttp', 'ebbtide.config', 'prometheus_client', 'xllamacpp')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
