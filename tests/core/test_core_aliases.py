"""Upstream's names of a model (file stems of its artifact URLs) resolve to its id (issue 10,
item 10): in every command, with the post-processing variant where the command takes a kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.artifacts import build_mirror

from picozoo.errors import RegistryError, UnknownModelError, UsageError
from picozoo.hub.registry import (
    Registry,
    derive_aliases,
    load_registry,
    parse_registry,
    stem_aliases,
)
from picozoo.targets import resolve_arg


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry()


def cli(*args: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**base, "PICOZOO_CACHE": str(cache), **env},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "model_id", "postprocess"),
    [
        ("picodet_s_416_coco_lcnet", "picodet-s-416", None),  # config / weights / onnx stem
        ("picodet_s_416_coco_lcnet_non_postprocess", "picodet-s-416", False),
        ("picodet_s_416_coco_lcnet_non_postprocess.tar", "picodet-s-416", False),
        ("picodet_s_416_lcnet_postprocessed", "picodet-s-416", True),
        ("picodet_s_416_coco_lcnet_fp16", "picodet-s-416", None),
        ("PicoDet_XS_320_COCO_LCNet", "picodet-xs-320", None),
        ("picodet_s_416_coco_lcnet_quant", "picodet-s-416-quant", None),
        ("picodet_s_416_coco_lcnet_quant_non_postprocess", "picodet-s-416-quant", False),
        ("picodet_s_416_lcnet_quant", "picodet-s-416-quant", None),  # its slim config
        ("picodet_s_320_coco", "picodet-legacy-s-320", None),
        ("picodet_lcnet_1_5x_640_coco", "picodet-legacy-lcnet-1.5x-640", None),
        ("picodet_r18_640_coco", "picodet-legacy-r18-640", None),  # from the log's train_ stem
        ("picodet-s-416", "picodet-s-416", None),
    ],
)
def test_upstream_names_resolve(
    reg: Registry, name: str, model_id: str, postprocess: bool | None
) -> None:
    model, pp = reg.resolve(name)
    assert (model.id, pp) == (model_id, postprocess)
    target = resolve_arg(name, reg)
    assert target.model is not None and target.model.id == model_id
    assert target.postprocess == postprocess


@pytest.mark.slow
@pytest.mark.parametrize("name", ["picodet_s_416", "picodet_s_320", "picodet_s_416.tar"])
def test_a_legacy_name_that_reads_as_a_current_id_is_refused_naming_both(
    reg: Registry, name: str, tmp_path: Path
) -> None:
    """The 2021 Lite tarball picodet_s_416.tar is picodet-legacy-s-416's: its stem reads as
    picodet-s-416, so it is refused (exit 2, before any download) saying whose name it is."""
    current = name[:13].replace("_", "-")
    legacy = current.replace("picodet-", "picodet-legacy-")
    with pytest.raises(UsageError) as e:
        reg.resolve(name)
    assert f"file name of {legacy}" in e.value.message and current in e.value.message
    assert reg.aliases_of(legacy).count(name.removesuffix(".tar")) == 1  # still its alias
    r = cli("pull", name, cache=tmp_path / "cache", PICOZOO_MIRROR="http://127.0.0.1:9")
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"picozoo: error: {name!r} is upstream's file name of {legacy} ")
    assert f"say which: {current}, or {legacy}" in line
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.part"))


def test_every_model_with_artifacts_has_its_config_stem_as_alias(reg: Registry) -> None:
    for m in reg.models:
        if m.has("config") and not m.quantized:
            stem = m.artifact("config").filename.removesuffix(".yml")
            assert reg.get(stem) is m, stem
    # the quantized model's config is its base's file: shared, so it names only the base
    assert reg.get("picodet_s_416_coco_lcnet").id == "picodet-s-416"
    assert "picodet_s_416_coco_lcnet" not in reg.aliases_of("picodet-s-416-quant")
    assert not reg.aliases_of("yolov5s-640")  # reference rows have no files, so no aliases


def test_stems_strip_extensions_prefixes_and_variant_suffixes() -> None:
    assert stem_aliases("train_picodet_m_416_coco_lcnet.log") == {"picodet_m_416_coco_lcnet": None}
    assert stem_aliases("picodet_l_640_coco_lcnet_fp16.tar") == {
        "picodet_l_640_coco_lcnet_fp16": None,
        "picodet_l_640_coco_lcnet": None,
    }
    assert stem_aliases("x_non_postprocess_fp16.nb") == {"x_non_postprocess_fp16": False, "x": None}


def _two_models(url_m: str, url_n: str) -> dict:
    return {
        "families": {"f": {"title": "F"}},
        "models": [
            {"id": "m", "family": "f", "input_size": [320, 320],
             "artifacts": [{"kind": "weights", "url": url_m}]},
            {"id": "n", "family": "f", "input_size": [320, 320],
             "artifacts": [{"kind": "onnx", "url": url_n}]},
        ],
    }  # fmt: skip


def test_an_alias_naming_two_models_is_refused_at_load() -> None:
    data = _two_models("https://h/a/x_y.pdparams", "https://h/b/x_y_fp16.onnx")
    with pytest.raises(RegistryError, match=r"alias 'x_y' .* would name both 'm' and 'n'") as e:
        parse_registry(data, "r.yaml")
    assert (e.value.entry, e.value.field, e.value.exit_code) == ("n", "artifacts", 3)


def test_an_alias_equal_to_another_models_id_is_refused() -> None:
    with pytest.raises(RegistryError, match=r"alias 'm' .* both 'm' and 'n'"):
        parse_registry(_two_models("https://h/a/z.pdparams", "https://h/b/m.onnx"))


def test_a_file_shared_by_two_models_names_neither() -> None:
    same = "https://h/c/shared.yml"
    data = _two_models(same, same)
    data["models"][1]["artifacts"][0]["kind"] = "config"
    data["models"][0]["artifacts"][0]["kind"] = "config"
    reg = parse_registry(data)
    assert "shared" not in reg.aliases
    assert derive_aliases(reg.models) == {}


def test_unknown_names_suggest_ids_and_aliases(reg: Registry) -> None:
    with pytest.raises(UnknownModelError) as e:
        reg.get("picodet_s_416_coco_lcnt")
    assert "picodet_s_416_coco_lcnet" in e.value.suggestions


@pytest.mark.slow
def test_show_lists_aliases_in_table_and_json(tmp_path: Path) -> None:
    r = cli("show", "picodet_s_416_coco_lcnet_non_postprocess", "--format", "json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["id"] == "picodet-s-416"
    assert "picodet_s_416_coco_lcnet_non_postprocess" in info["aliases"]
    r = cli("show", "picodet-legacy-s-320", cache=tmp_path, COLUMNS="200")
    assert r.returncode == 0, r.stderr
    line = next(s for s in r.stdout.splitlines() if s.startswith("aliases"))
    assert line == "aliases (upstream names): picodet_s_320, picodet_s_320_coco, picodet_s_320_fp16"


@pytest.mark.slow
def test_pull_by_non_postprocess_stem_fetches_the_nopp_tarball(
    reg: Registry, tmp_path: Path
) -> None:
    build_mirror(reg, tmp_path / "up", tmp_path, ["picodet-s-416"], ("inference-nopp",))
    r = cli("pull", "picodet_s_416_coco_lcnet_non_postprocess", "--format", "json",
            cache=tmp_path / "c", PICOZOO_MIRROR=(tmp_path / "up").as_uri())  # fmt: skip
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert (row["model"], row["kind"]) == ("picodet-s-416", "inference-nopp")
    # an explicit kind with its own variant: the stem switches it to the same variant
    r = cli("pull", "picodet_s_416_coco_lcnet_non_postprocess", "-a", "weights",
            cache=tmp_path / "c", PICOZOO_OFFLINE="1")  # fmt: skip
    assert r.returncode == 7 and "weights" in r.stderr  # weights have no variant: unchanged


def test_variant_kind_switches_only_to_kinds_the_model_has(reg: Registry) -> None:
    s416 = reg.get("picodet-s-416")
    assert s416.variant_kind("onnx", postprocess=False) == "onnx-nopp"
    assert s416.variant_kind("inference-nopp", postprocess=True) == "inference"
    assert s416.variant_kind("weights", postprocess=False) == "weights"
    assert s416.variant_kind("inference", postprocess=None) == "inference"
    legacy = reg.get("picodet-legacy-s-320")  # has onnx-nopp, no inference-nopp
    assert legacy.variant_kind("onnx", postprocess=False) == "onnx-nopp"
    assert legacy.variant_kind("inference", postprocess=False) == "inference"
