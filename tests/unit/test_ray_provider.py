"""Ray provider without a cluster: config parsing, resource options, argv rewriting, the missing-Ray error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ebbtide.config import Config, ConfigError, RayProviderSpec, load_config
from ebbtide.providers.factory import build_provider
from ebbtide.providers.local import LocalProvider
from ebbtide.providers.ray.provider import RayUnavailable, actor_options, bind_host


def cfg(provider: dict[str, object] | None = None, **pool: object) -> Config:
    raw: dict[str, object] = {"pools": [{"name": "p", **pool}]}
    if provider is not None:
        raw["provider"] = provider
    return Config.model_validate(raw)


def test_provider_defaults_to_local_and_ray_fields_default() -> None:
    assert cfg().provider.kind == "local"
    ray = cfg({"kind": "ray"}).provider
    assert isinstance(ray, RayProviderSpec)
    assert (ray.address, ray.namespace) == ("auto", "ebbtide")


def test_yaml_with_ray_provider_and_pool_resources(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "provider: {kind: ray, address: '10.0.0.5:6379', namespace: prod}\n"
        "pools:\n  - name: p\n    ray: {num_cpus: 2, num_gpus: 1, resources: {a10g: 1}, strategy: pack}\n"
    )
    c = load_config(path)
    assert c.provider == RayProviderSpec(kind="ray", address="10.0.0.5:6379", namespace="prod")
    placement = c.pools[0].ray
    assert placement is not None
    assert (placement.num_cpus, placement.num_gpus, placement.resources, placement.strategy) == (
        2.0, 1.0, {"a10g": 1.0}, "pack")  # fmt: skip


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("provider: {kind: ray, adress: x}\npools: [{name: p}]\n", "`provider.ray.adress`"),
        ("provider: {kind: slurm}\npools: [{name: p}]\n", "`provider`"),
        ("pools: [{name: p, ray: {num_cpus: 1}}]\n", "pools[p].ray: only used with `provider: {kind: ray}`"),
        ("provider: {kind: ray}\npools: [{name: p, ray: {resources: {a10g: 0}}}]\n",
         "resources.a10g = 0.0: must be > 0"),
        ("provider: {kind: ray}\npools: [{name: p, ray: {num_cpus: -1}}]\n", "`pools.0.ray.num_cpus` = -1"),
    ],
)
def test_bad_provider_config_names_the_field(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_actor_options_gpus_follow_vllm_tensor_parallel_unless_set() -> None:
    vllm = {"kind": "vllm", "model": "m", "tensor_parallel": 4}
    assert actor_options(cfg({"kind": "ray"}, engine=vllm).pools[0]) == {
        "num_cpus": 1.0, "num_gpus": 4.0, "resources": {}, "scheduling_strategy": "SPREAD"}  # fmt: skip
    placement = {"num_gpus": 1, "resources": {"h100": 1}, "strategy": "pack"}
    explicit = cfg({"kind": "ray"}, engine=vllm, ray=placement)
    assert actor_options(explicit.pools[0]) == {"num_cpus": 1.0, "num_gpus": 1.0, "resources": {"h100": 1.0}}
    assert actor_options(cfg({"kind": "ray"}).pools[0])["num_gpus"] == 0.0


def test_bind_host_rewrites_only_the_listen_flag() -> None:
    argv = ["python", "-m", "w", "--host", "127.0.0.1", "--port", "9", "--", "host=1"]
    assert bind_host(argv, "10.1.2.3") == [*argv[:4], "10.1.2.3", *argv[5:]]
    assert bind_host(["tgi", "--hostname", "0.0.0.0"], "10.1.2.3") == ["tgi", "--hostname", "10.1.2.3"]
    assert bind_host(["x", "--port", "1"], "h") == ["x", "--port", "1"]


def test_build_provider_local_by_default(tmp_path: Path) -> None:
    assert isinstance(build_provider(cfg(), tmp_path), LocalProvider)


def test_ray_selected_without_ray_installed_says_how_to_install(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    with pytest.raises(RayUnavailable, match=r"pip install 'ebbtide\[ray\]'"):
        build_provider(cfg({"kind": "ray"}), tmp_path)
