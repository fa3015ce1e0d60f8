"""``infer_cfg.yml`` is read with picozoo's one strict YAML loader and checked field by field:
a bad file the user gave is exit 2, a bad one inside a pulled tarball exit 5, and the error
names the file and the field (issue 17 items 2, 14, 15)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.artifacts import make_inference_dir
from support.infer_cfg import infer_cfg

from picozoo.errors import BadArchiveError, InferConfigError, ModelFileError, RegistryError
from picozoo.hub.registry import load_registry
from picozoo.paddle_dir import (
    MAX_CONFIG_BYTES,
    MAX_SIDE,
    InferConfig,
    check_inference_dir,
    find_paddle_model,
)
from picozoo.resolve import exported_size
from picozoo.runtime.base import TensorInfo
from picozoo.yaml_strict import StrictYamlError, read_text, strict_yaml

GOOD = infer_cfg((320, 256), ["a", "b", "c"], nms={"score_threshold": 0.3, "keep_top_k": -1})


def _data() -> dict[str, Any]:
    return dict(yaml.safe_load(GOOD))


def _edited(edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = _data()
    edit(data)
    return data


def test_an_exported_config_is_read_whole() -> None:
    cfg = InferConfig.from_text(GOOD)
    assert (cfg.input_size, cfg.keep_ratio, cfg.interp, cfg.is_scale) == (
        (320, 256),
        False,
        2,
        True,
    )
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
    assert cfg.labels == ("a", "b", "c") and cfg.nms is not None
    assert (cfg.nms.score_threshold, cfg.nms.keep_top_k) == (0.3, -1)


def test_upstream_spellings_picozoo_did_not_read_are_read() -> None:
    """An int target_size is a square (upstream's Resize); ``norm_type: none`` skips the
    mean/std step (the same as mean 0, std 1); ``is_scale: false`` is False."""
    data = _data()
    data["Preprocess"][0]["target_size"] = 416
    data["Preprocess"][1].update(norm_type="none", is_scale=False)
    cfg = InferConfig.parse(data)
    assert cfg.input_size == (416, 416) and not cfg.is_scale
    assert (cfg.mean, cfg.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _resize(**kw: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda d: d["Preprocess"][0].update(kw)


def _norm(**kw: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda d: d["Preprocess"][1].update(kw)


def _nms(**kw: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda d: d["NMS"].update(kw)


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (_resize(target_size=[0, 320]), "Preprocess[0].target_size", "got [0, 320]"),
        (_resize(target_size=[-320, 320]), "Preprocess[0].target_size", "positive"),
        (_resize(target_size=[100000, 100000]), "Preprocess[0].target_size", f"{MAX_SIDE}"),
        (_resize(target_size=[320.5, 320]), "Preprocess[0].target_size", "integers"),
        (_resize(target_size=[True, 320]), "Preprocess[0].target_size", "integers"),
        (_resize(target_size=[320]), "Preprocess[0].target_size", "two"),
        (_resize(target_size=None), "Preprocess[0].target_size", "got none"),
        (_resize(interp=99), "Preprocess[0].interp", "lanczos4), got 99"),
        (_resize(interp=-1), "Preprocess[0].interp", "0-4"),
        (_resize(interp="2"), "Preprocess[0].interp", "got '2'"),
        (_resize(keep_ratio="false"), "Preprocess[0].keep_ratio", "the string 'false'"),
        (_norm(is_scale="false"), "Preprocess[1].is_scale", "the string 'false'"),
        (_norm(is_scale=1), "Preprocess[1].is_scale", "true or false"),
        (_norm(mean=[0.4, 0.4, 0.4, 0.4]), "Preprocess[1].mean", "three finite numbers"),
        (_norm(mean=[0.4, 0.4]), "Preprocess[1].mean", "three"),
        (_norm(mean=[0.4, "x", 0.4]), "Preprocess[1].mean", "numbers"),
        (_norm(mean=[0.4, 10**400, 0.4]), "Preprocess[1].mean", "finite"),
        (_norm(mean=[0.4, float("nan"), 0.4]), "Preprocess[1].mean", "finite"),
        (_norm(std=[0.2, 0, 0.2]), "Preprocess[1].std", "must not be zero"),
        (_norm(std=[0.2, 0.2, float("inf")]), "Preprocess[1].std", "finite"),
        (_norm(norm_type="minmax"), "Preprocess[1].norm_type", "'minmax'"),
        (_nms(score_threshold=1.5), "NMS.score_threshold", "[0, 1], got 1.5"),
        (_nms(score_threshold=-0.1), "NMS.score_threshold", "[0, 1]"),
        (_nms(nms_threshold=0), "NMS.nms_threshold", "(0, 1], got 0"),
        (_nms(nms_threshold=1.01), "NMS.nms_threshold", "(0, 1]"),
        (_nms(keep_top_k=0), "NMS.keep_top_k", "-1 (all) or a positive integer, got 0"),
        (_nms(nms_top_k=-2), "NMS.nms_top_k", "got -2"),
        (_nms(nms_top_k=1.5), "NMS.nms_top_k", "got 1.5"),
        (lambda d: d.update(NMS=[1]), "NMS", "mapping"),
        (lambda d: d.update(draw_threshold=2), "draw_threshold", "[0, 1]"),
        (lambda d: d.update(label_list="person"), "label_list", "list"),
        (lambda d: d.update(label_list=["a", ["b"]]), "label_list[1]", "name"),
        (lambda d: d.update(label_list=["a", None]), "label_list[1]", "got none"),
        (lambda d: d.update(label_list=["x" * 300]), "label_list[0]", "256 characters"),
        (lambda d: d.update(Preprocess={"type": "Resize"}), "Preprocess", "list of steps"),
        (lambda d: d["Preprocess"].append("Permute"), "Preprocess[3]", "mapping"),
        (lambda d: d["Preprocess"].append({"type": "PadStride"}), "Preprocess[3].type",
         "'PadStride'"),
        (lambda d: d["Preprocess"].append({"type": "Resize", "target_size": 1}), "Preprocess[3]",
         "a second Resize (the first is Preprocess[0])"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named(
    edit: Callable[[dict[str, Any]], Any], field: str, problem: str
) -> None:
    with pytest.raises(InferConfigError) as e:
        InferConfig.parse(_edited(edit), "my_cfg.yml")
    assert e.value.field == field and problem in e.value.problem, e.value
    assert str(e.value).startswith(f"my_cfg.yml: field {field!r}: ")
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_a_config_that_is_not_a_mapping_is_refused() -> None:
    for data in (None, [1, 2], "text"):
        with pytest.raises(InferConfigError, match="must be a YAML mapping"):
            InferConfig.parse(data)


ALIAS_BOMB = (
    GOOD.split("label_list:")[0]
    + "bomb: [&a [lol, lol, lol], &b [*a, *a, *a], &c [*b, *b, *b]]\nlabel_list: [*c]\n"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (ALIAS_BOMB, "anchors and aliases (&, *) are not allowed"),
        (GOOD + "label_list: [x]\n", "duplicate key 'label_list'"),
        (GOOD.replace("- 0.485", "- .nan"), "non-finite number '.nan'"),
        (GOOD.replace("- 0.229", "- 1.0e+999"), "non-finite number '1.0e+999'"),
        ("a: [" * 40 + "]" * 40 + "\n", "nested deeper than 32"),
        ("Preprocess: [\n", "not valid YAML"),
    ],
)
def test_the_strict_loader_refuses_what_a_config_never_needs(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "infer_cfg.yml"
    path.write_text(text)
    with pytest.raises(InferConfigError, match=re.escape(problem)):
        InferConfig.load(path)


def test_a_refused_config_inside_an_artifact_is_exit_5(tmp_path: Path) -> None:
    path = tmp_path / "infer_cfg.yml"
    path.write_text(ALIAS_BOMB)
    with pytest.raises(BadArchiveError) as e:
        InferConfig.load(path, artifact="picodet-s-416 inference")
    assert e.value.exit_code == 5
    assert str(e.value).startswith("picodet-s-416 inference: infer_cfg.yml: not valid YAML")
    assert isinstance(e.value.__cause__, InferConfigError)


def test_pulls_refuse_a_tarball_with_a_bad_config(tmp_path: Path) -> None:
    """The check a pull runs after unpacking (before anything is cached or pinned)."""
    folder = make_inference_dir(tmp_path / "m")
    check_inference_dir(folder, "picodet-s-416 inference")  # upstream's layout passes
    cfg = _data()
    cfg["Preprocess"][1]["std"] = [0, 0, 0]
    (folder / "infer_cfg.yml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(BadArchiveError, match=r"field 'Preprocess\[1\].std': must not be zero"):
        check_inference_dir(folder, "picodet-s-416 inference")


def test_a_model_folder_with_a_bad_config_is_refused_not_defaulted(tmp_path: Path) -> None:
    """What ``infer``/``convert``/``bench`` read of a folder: no silent defaults any more."""
    folder = make_inference_dir(tmp_path / "m", size=320)
    assert exported_size(folder) == (320, 320)
    (folder / "infer_cfg.yml").write_text(GOOD.replace("- 2\n", "- 99\n", 1).replace(
        "interp: 2", "interp: 99"))  # fmt: skip
    with pytest.raises(InferConfigError, match=r"'Preprocess\[0\].interp'"):
        exported_size(folder)
    with pytest.raises(BadArchiveError):
        exported_size(folder, artifact="picodet-s-416 inference-nopp")
    with pytest.raises(InferConfigError):
        find_paddle_model(folder).config()


def test_only_regular_files_of_bounded_size_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    got: list[Exception] = []

    def read() -> None:
        try:
            InferConfig.load(fifo)
        except InferConfigError as e:
            got.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert got and "not a regular file (a FIFO)" in str(got[0])
    with pytest.raises(InferConfigError, match="a directory"):
        InferConfig.load(tmp_path)
    big = tmp_path / "big.yml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(InferConfigError, match="larger than 1 MiB"):
        InferConfig.load(big)
    with pytest.raises(InferConfigError, match="cannot read"):
        InferConfig.load(tmp_path / "missing.yml")
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"label_list: [caf\xe9]\n")
    with pytest.raises(InferConfigError, match=r"not UTF-8 text \(byte 16\)"):
        InferConfig.load(latin)


def test_the_registry_uses_the_same_loader(tmp_path: Path) -> None:
    with pytest.raises(StrictYamlError, match="duplicate key 'a'"):
        strict_yaml("a: 1\na: 2\n")
    fifo = tmp_path / "registry.yaml"
    os.mkfifo(fifo)
    with pytest.raises(RegistryError, match="not a regular file") as e:
        load_registry(fifo)
    assert e.value.exit_code == 3
    with pytest.raises(StrictYamlError, match="character device"):
        read_text(Path("/dev/zero"), max_bytes=10)


# -- the config against the model -------------------------------------------------------------
def _t(name: str, shape: list[Any]) -> TensorInfo:
    return TensorInfo(name, shape, "float32")


NOPP_OUT = [_t(f"s{i}", [1, n, 3]) for i, n in enumerate((64, 16, 4, 1))] + [
    _t(f"d{i}", [1, n, 32]) for i, n in enumerate((64, 16, 4, 1))
]
FIXED = [_t("image", [1, 3, 64, 64])]
DYNAMIC_NMS = [_t("image", [None, 3, None, None]), _t("scale_factor", [None, 2])]


def _cfg(edit: Callable[[dict[str, Any]], Any] | None = None) -> InferConfig:
    data = yaml.safe_load(infer_cfg((64, 64), ["a", "b", "c"]))
    if edit:
        edit(data)
    return InferConfig.parse(data, "cfg.yml")


def test_a_config_that_fits_the_model_passes() -> None:
    _cfg().check_model(FIXED, NOPP_OUT)
    _cfg(lambda d: d.pop("label_list")).check_model(FIXED, NOPP_OUT)  # warned by infer
    keep = _cfg(_resize(keep_ratio=True, target_size=[320, 320]))
    keep.check_model(DYNAMIC_NMS, [_t("boxes", [None, 6]), _t("num", [1])])  # as upstream


@pytest.mark.parametrize(
    ("cfg", "inputs", "outputs", "match"),
    [
        (_cfg(_resize(target_size=[96, 96])), FIXED, NOPP_OUT,
         r"'Preprocess\[0\].target_size': \[96, 96\] contradicts the model's fixed input 64x64"),
        (_cfg(_resize(keep_ratio=True)), FIXED, NOPP_OUT,
         r"'Preprocess\[0\].keep_ratio': .*input is fixed at 64x64"),
        (_cfg(_resize(keep_ratio=True)), [_t("image", [1, 3, "h", "w"])], NOPP_OUT,
         r"keep_ratio.*decodes a model without NMS on the target_size grid"),
        (_cfg(lambda d: d.update(label_list=["a", "b"])), FIXED, NOPP_OUT,
         r"'label_list': 2 labels, the model has 3 classes"),
    ],
)  # fmt: skip
def test_a_config_contradicting_the_model_is_refused_before_running(
    cfg: InferConfig, inputs: list[TensorInfo], outputs: list[TensorInfo], match: str
) -> None:
    with pytest.raises(InferConfigError, match=match) as e:
        cfg.check_model(inputs, outputs)
    assert str(e.value).startswith("cfg.yml: field ")


def test_the_artifact_a_config_came_from_sets_the_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "infer_cfg.yml"
    path.write_text(infer_cfg((96, 96), ["a", "b", "c"]))
    cfg = InferConfig.load(path, artifact="m inference-nopp")
    with pytest.raises(BadArchiveError, match=r"^m inference-nopp: infer_cfg.yml: field") as e:
        cfg.check_model(FIXED, NOPP_OUT)
    assert e.value.exit_code == 5


def test_a_model_without_an_image_input_is_named() -> None:
    with pytest.raises(ModelFileError, match=r"m.onnx: its inputs are 'x', 'y'; picozoo feeds"):
        _cfg().check_model([_t("x", [1, 3, 64, 64]), _t("y", [1])], NOPP_OUT, "m.onnx")
