"""The hardware catalog: every figure cited, strict loading, the prices the seed and REFERENCES quote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ebbtide.plan.hardware import CatalogError, Cited, CitedOptional, default_catalog, load_catalog

CATALOG_FILE = Path(__file__).resolve().parents[2] / "src" / "ebbtide" / "plan" / "hardware.yaml"


def _cited_fields(obj: object) -> list[tuple[str, Cited | CitedOptional]]:
    fields = getattr(type(obj), "model_fields", {})
    values = [(name, getattr(obj, name)) for name in fields]
    return [(name, v) for name, v in values if isinstance(v, Cited | CitedOptional)]


def test_catalog_has_the_issue_gpus_and_instances() -> None:
    cat = default_catalog()
    assert set(cat.gpus) == {"A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100-80GB", "H200-141GB"}
    ec2 = {"g5.12xlarge", "g5.48xlarge", "g6e.48xlarge", "p4d.24xlarge", "p5.48xlarge"}
    assert set(cat.instances) == ec2 | {f"ml.{n}" for n in ec2}
    for name in ec2:
        ec2_spec, sm_spec = cat.instance(name), cat.instance(f"ml.{name}")
        assert (ec2_spec.platform, sm_spec.platform) == ("ec2", "sagemaker")
        assert (ec2_spec.gpu, ec2_spec.gpus) == (sm_spec.gpu, sm_spec.gpus)


def test_every_figure_carries_a_source() -> None:
    cat = default_catalog()
    items = [*cat.gpus.values(), *cat.instances.values(), *cat.named_prices.values(), *cat.calibration]
    checked = 0
    for item in items:
        for name, cited in _cited_fields(item):
            assert cited.source.strip(), name
            checked += 1
    assert checked == 7 * 6 + 10 * 2 + 1 + 2


def test_fp8_is_null_exactly_on_ampere() -> None:
    cat = default_catalog()
    no_fp8 = {n for n, g in cat.gpus.items() if g.fp8_tflops.value is None}
    assert no_fp8 == {"A10G", "A100-40GB", "A100-80GB"}


@pytest.mark.parametrize(
    ("instance", "usd"),
    [
        ("g5.48xlarge", 16.288),
        ("ml.g5.48xlarge", 20.36),
        ("g6e.48xlarge", 30.131),
        ("p4d.24xlarge", 21.958),
        ("ml.p4d.24xlarge", 37.688),
        ("p5.48xlarge", 55.04),
        ("ml.p5.48xlarge", 113.068),
    ],
)
def test_list_prices_match_references(instance: str, usd: float) -> None:
    assert default_catalog().instance(instance).hourly_usd.value == usd


def test_seed_price_is_a_separate_named_price_and_estimates_are_flagged() -> None:
    cat = default_catalog()
    seed = cat.prices_for("ml.g5.48xlarge")
    assert list(seed) == ["seed-000"] and seed["seed-000"].hourly_usd.value == 17.0
    assert cat.instance("ml.g5.48xlarge").hourly_usd.value == 20.36
    assert [n for n, i in cat.instances.items() if i.hourly_usd.estimate] == ["ml.g6e.48xlarge"]


def test_unknown_key_is_rejected_naming_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    raw["gpus"]["L4"]["memory_gb"]["unit"] = "GiB"
    bad = tmp_path / "hw.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match=r"hw\.yaml: gpus\.L4\.memory_gb\.unit"):
        load_catalog(bad)


def test_instance_must_name_a_known_gpu(tmp_path: Path) -> None:
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    raw["instances"]["g5.12xlarge"]["gpu"] = "A10"
    bad = tmp_path / "hw.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match=r"instances\.g5\.12xlarge\.gpu = 'A10'"):
        load_catalog(bad)


def test_missing_source_is_rejected(tmp_path: Path) -> None:
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    del raw["instances"]["p5.48xlarge"]["hourly_usd"]["source"]
    bad = tmp_path / "hw.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match=r"hourly_usd\.source"):
        load_catalog(bad)
