"""A real ``ebbtide serve`` in front of the stub engine (an ``openai`` pool), for the reliability suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ebbtide.testing.stub_engine import spawn_stub
from tests.conftest import _free_port
from tests.gateway_harness import GatewayProcess, gateway

POOL = "stub"


def write_stub_config(path: Path, stub_url: str, slots: int = 1100) -> Path:
    path.write_text(yaml.safe_dump({
        "pools": [{
            "name": POOL,
            "engine": {"kind": "openai", "url": stub_url + "/v1", "slots": slots},
            "replica": {"health_interval_s": 1},
            "scaling": {"min_replicas": 1, "max_replicas": 1},
        }],
        "gateway": {"max_queue": 5000},
    }))
    return path


@pytest.fixture(scope="module")
def stub_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    """(gateway, stub URL), one per module: the stub streams 16 chunks 10 ms apart, so streams overlap."""
    tmp_path = tmp_path_factory.mktemp("stub-gateway")
    with spawn_stub(_free_port(), chunks=16, chunk_delay_ms=10) as stub_url:
        config = write_stub_config(tmp_path / "ebbtide.yaml", stub_url)
        with gateway(config, tmp_path / "state", _free_port(), ready_pool=POOL) as gw:
            yield gw, stub_url
