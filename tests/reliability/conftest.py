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
    """(gateway, stub URL), one per module. The stub answers at once (16 chunks); a test that needs streams to
    overlap holds them in the stub (``/stub/hold`` … ``/stub/release``) rather than slowing every answer."""
    tmp_path = tmp_path_factory.mktemp("stub-gateway")
    with spawn_stub(_free_port(), chunks=16) as stub_url:
        config = write_stub_config(tmp_path / "ebbtide.yaml", stub_url)
        with gateway(config, tmp_path / "state", _free_port(), ready_pool=POOL) as gw:
            yield gw, stub_url
