"""The packaged registry: completeness against the upstream READMEs, and validation errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from picozoo.errors import RegistryError, UnknownArtifactError, UnknownModelError
from picozoo.hub.registry import (
    ARTIFACT_KINDS,
    load_registry,
    packaged_registry_path,
    parse_registry,
)

UPSTREAM = Path(__file__).resolve().parents[1] / "data" / "upstream"
REPO_REGISTRY = Path(__file__).resolve().parents[2] / "registry.yaml"
URL = re.compile(r"https?://paddledet\.bj\.bcebos\.com/[^\s)\]\"'<>|]+")


def upstream_urls(name: str) -> set[str]:
    return set(URL.findall((UPSTREAM / name).read_text(encoding="utf-8")))


@pytest.mark.parametrize("readme", ["picodet_README_en.md", "picodet_legacy_README.md"])
def test_every_upstream_artifact_url_is_in_registry_byte_for_byte(readme: str) -> None:
    urls = upstream_urls(readme)
    assert len(urls) > 30  # the extraction itself works
    text = REPO_REGISTRY.read_text(encoding="utf-8")
    registered = {a.url for a in load_registry(REPO_REGISTRY).artifacts()}
    missing = sorted(u for u in urls if u not in registered)
    assert not missing, f"not in registry.yaml: {missing}"
    # byte-for-byte: the raw YAML text holds each URL exactly as upstream spells it
    assert all(f'"{u}"' in text for u in urls)


def test_reference_copies_match_shared_when_available() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip("../shared/reference is not beside this checkout")
    for name in ("picodet_README_en.md", "picodet_legacy_README.md"):
        assert (UPSTREAM / name).read_bytes() == (shared / name).read_bytes()


def test_main_family_has_all_nine_models_with_every_artifact_kind() -> None:
    reg = load_registry()
    main = [m for m in reg.models if m.family == "picodet" and not m.quantized]
    expected = {f"picodet-{v}-{s}" for v in ("xs", "s", "m", "l") for s in (320, 416)}
    assert {m.id for m in main} == expected | {"picodet-l-640"}
    want = {
        "weights",
        "log",
        "config",
        "inference",
        "inference-nopp",
        "onnx",
        "onnx-nopp",
        "lite-fp32",
        "lite-fp16",
    }
    for m in main:
        assert set(m.kinds) == want, m.id
        assert m.claims.latency_ms.keys() == {"cpu", "lite"}
    # the row with the missing '|' upstream still has its real Lite FP32 link
    l640 = reg.get("picodet-l-640")
    assert l640.artifact("lite-fp32").url.endswith(
        "/deploy/paddlelite/picodet_l_640_coco_lcnet.tar"
    )
    assert l640.claims.flops_g == 16.81 and l640.claims.latency_ms["cpu"] == 62.5


def test_quantized_legacy_and_reference_rows() -> None:
    reg = load_registry()
    q = reg.get("picodet-s-416-quant")
    assert q.quantized and q.base_model == "picodet-s-416" and q.claims.map == 31.5
    assert {"weights", "inference", "inference-nopp", "lite-int8", "lite-int8-nopp"} <= set(q.kinds)
    legacy = [m for m in reg.models if m.family == "picodet-legacy"]
    assert len(legacy) == 12 and reg.families["picodet-legacy"].legacy
    assert reg.get("picodet-legacy-lcnet-1.5x-416").has("lite-fp16")
    other = [m for m in reg.models if m.family == "other"]
    assert len(other) == 11 and all(not m.artifacts for m in other)
    assert reg.get("yolov5s-640").claims.latency_ms == {"ncnn": 78.05}
    assert "i7-10750H" in reg.families["picodet"].latency["cpu"]


def test_all_kinds_are_in_the_vocabulary_and_ids_unique() -> None:
    reg = load_registry()
    ids = [m.id for m in reg.models]
    assert len(ids) == len(set(ids))
    assert {a.kind for a in reg.artifacts()} <= set(ARTIFACT_KINDS)


def test_packaged_registry_is_the_repo_file() -> None:
    assert packaged_registry_path().read_bytes() == REPO_REGISTRY.read_bytes()


def test_unknown_model_suggests_close_ids() -> None:
    with pytest.raises(UnknownModelError) as e:
        load_registry().get("picodet-s416")
    assert "picodet-s-416" in e.value.suggestions
    assert "did you mean" in str(e.value)


def test_unknown_artifact_lists_available() -> None:
    with pytest.raises(UnknownArtifactError, match=r"available: .*weights"):
        load_registry().get("picodet-legacy-s-320").artifact("inference")


def _minimal() -> dict:
    return {
        "families": {"f": {"title": "F"}},
        "models": [
            {
                "id": "m-1",
                "family": "f",
                "input_size": [320, 320],
                "claims": {"map": 1.0},
                "artifacts": [{"kind": "weights", "url": "https://h.example/a.pdparams"}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("mutate", "entry", "field"),
    [
        (
            lambda d: d["models"][0]["artifacts"][0].update(kind="weight"),
            "m-1",
            "artifacts[0].kind",
        ),
        (lambda d: d["models"][0]["artifacts"][0].update(url="ftp:/x"), "m-1", "artifacts[0].url"),
        (
            lambda d: d["models"][0]["artifacts"][0].update(sha256="abc"),
            "m-1",
            "artifacts[0].sha256",
        ),
        (lambda d: d["models"][0]["artifacts"][0].update(size=-1), "m-1", "artifacts[0].size"),
        (lambda d: d["models"][0].update(input_size=[320]), "m-1", "input_size"),
        (lambda d: d["models"][0].update(family="nope"), "m-1", "family"),
        (lambda d: d["models"][0].update(claims={"map": "high"}), "m-1", "claims.map"),
        (lambda d: d["models"][0].update(colour="red"), "m-1", "colour"),
        (lambda d: d["models"].append(dict(d["models"][0])), "m-1", "id"),
    ],
)
def test_malformed_entry_names_file_entry_and_field(mutate, entry: str, field: str) -> None:
    data = _minimal()
    mutate(data)
    with pytest.raises(RegistryError) as e:
        parse_registry(data, "my.yaml")
    assert (e.value.path, e.value.entry, e.value.field) == ("my.yaml", entry, field)
    assert str(e.value).startswith(f"my.yaml: entry {entry!r}, field {field!r}: ")
    assert "\n" not in str(e.value)


def test_minimal_registry_parses_and_bad_yaml_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_minimal()))
    assert load_registry(good).get("m-1").artifact("weights").filename == "a.pdparams"
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n  - id: x\n")
    with pytest.raises(RegistryError, match=r"bad\.yaml: not valid YAML at line \d+"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
