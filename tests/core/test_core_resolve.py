"""The one resolver (:mod:`picozoo.resolve`): which file an argument runs as, per format and
source; the one inference-folder rule and the one ``infer_cfg.yml``-beside rule
(:mod:`picozoo.paddle_dir`). Pulls and conversions are tested where they run (bench sources,
convert, inspect ids, infer/eval); here the decisions, without a network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from picozoo.errors import UsageError
from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.paddle_dir import config_beside, find_paddle_model, missing_inference_files
from picozoo.provenance import Provenance
from picozoo.resolve import plan, realize
from picozoo.settings import Settings
from picozoo.targets import Target, resolve_arg

REG = load_registry()


def _model(mid: str) -> Target:
    return Target(mid, model=REG.get(mid))


@pytest.mark.parametrize(
    ("mid", "fmt", "postprocess", "source", "expected"),
    [
        # Paddle Inference: the inference tarball of the asked kind
        ("picodet-s-416", "paddle", False, "auto", ("upstream", "inference-nopp", None, False)),
        ("picodet-s-416", "paddle", True, "auto", ("upstream", "inference", None, True)),
        # ONNX Runtime: upstream's ONNX when it has one, else converted from the tarball
        ("picodet-s-416", "onnxruntime", False, "auto", ("upstream", "onnx-nopp", None, False)),
        ("picodet-s-416", "onnx", True, "auto", ("upstream", "onnx", None, True)),
        (
            "picodet-s-416",
            "onnx",
            False,
            "converted",
            ("converted", "inference-nopp", "onnx", False),
        ),
        (
            "picodet-s-416-quant",
            "onnx",
            False,
            "auto",
            ("converted", "inference-nopp", "onnx", False),
        ),
        # what an engine conversion reads: converted when there is a tarball, else upstream's
        ("picodet-s-416", "onnx", False, "chain", ("converted", "inference-nopp", "onnx", False)),
        ("picodet-legacy-s-320", "onnx", True, "chain", ("upstream", "onnx-nopp", None, False)),
        # the engines' own formats: always the converter's file
        ("picodet-s-416", "openvino", False, "auto", ("converted", None, "openvino", False)),
        ("picodet-legacy-s-320", "ncnn", True, "auto", ("converted", None, "ncnn", True)),
    ],
)
def test_model_ids_plan_by_format_and_source(
    mid: str, fmt: str, postprocess: bool, source: str, expected: tuple[Any, ...]
) -> None:
    p = plan(_model(mid), fmt, postprocess=postprocess, source=source)
    assert (p.origin, p.kind, p.to, p.postprocess) == expected


def test_a_model_without_what_the_format_needs_says_what_to_do() -> None:
    with pytest.raises(UsageError, match="has no Paddle inference tarball") as exc:
        plan(_model("picodet-legacy-s-320"), "paddle", verb="bench")
    assert exc.value.hint == "bench its upstream ONNX on ONNX Runtime: --engine onnxruntime"
    with pytest.raises(UsageError, match="it has: weights, log, config"):
        plan(_model("picodet-legacy-r18-640"), "paddle", verb="run")
    with pytest.raises(UsageError, match="no ONNX or Paddle inference model to convert"):
        plan(_model("picodet-legacy-r18-640"), "onnx", source="chain")
    with pytest.raises(UsageError, match="no upstream onnx-nopp ONNX"):
        plan(_model("picodet-s-416-quant"), "onnx", source="upstream")
    lite = plan(_model("picodet-s-416"), "lite")  # the x86 .nb of its Lite conversion
    assert (lite.origin, lite.to) == ("converted", "lite")
    with pytest.raises(UsageError, match="unknown format 'tflite'"):
        plan(_model("picodet-s-416"), "tflite")


@pytest.mark.parametrize(
    ("name", "fmt", "source", "origin", "to"),
    [
        ("m.onnx", "onnxruntime", "auto", "file", None),
        ("m.onnx", "onnx", "chain", "file", None),
        ("m.onnx", "openvino", "auto", "converted", "openvino"),
        ("m.xml", "openvino", "auto", "file", None),
        ("m.param", "ncnn", "auto", "file", None),
        ("paddle_dir", "mnn", "auto", "converted", "mnn"),
        ("paddle_dir", "onnx", "chain", "converted", "onnx"),
        ("paddle_dir", "paddle", "auto", "file", None),
    ],
)
def test_paths_run_as_they_are_unless_the_format_needs_a_conversion(
    tmp_path: Path, name: str, fmt: str, source: str, origin: str, to: str | None
) -> None:
    path = tmp_path / name
    path.mkdir() if "." not in name else path.write_bytes(b"x")
    p = plan(resolve_arg(str(path), REG), fmt, source=source)
    assert (p.origin, p.to, p.label) == (origin, to, path.stem if "." in name else name)


def test_realize_runs_the_given_conversion_with_the_plan(tmp_path: Path) -> None:
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    calls: list[dict[str, Any]] = []

    class Result:
        def __init__(self, path: Path) -> None:
            self.path, self.label = path, "picodet-s-416"
            self.provenance = Provenance.from_json({"key": "k"})

    def convert(store_: Store, target: Target, /, **options: Any) -> Result:
        calls.append({"target": target.arg, **options})
        return Result(tmp_path / f"model.{options['to']}")

    target = _model("picodet-s-416")
    made = realize(plan(target, "mnn", precision="fp16"), store, convert=convert)
    onnx = realize(plan(target, "onnx", source="converted"), store, convert=convert)
    assert [{k: c[k] for k in ("to", "postprocess", "precision")} for c in calls] == [
        {"to": "mnn", "postprocess": False, "precision": "fp16"},
        {"to": "onnx", "postprocess": False, "precision": None},  # ONNX takes no precision
    ]
    assert (made.path.name, made.provenance["key"], made.input_size) == (
        "model.mnn",
        "k",
        (416, 416),
    )
    assert (onnx.plan.origin, onnx.cache_label) == ("converted", "picodet-s-416")
    with pytest.raises(UsageError, match="needs a conversion"):
        realize(plan(target, "ncnn"), store)  # below convert: the conversion is passed in


def test_a_file_plan_is_the_path_with_its_exported_size(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.pdmodel", "model.pdiparams"):
        (folder / name).write_bytes(b"x")
    (folder / "infer_cfg.yml").write_text(
        "Preprocess:\n- type: Resize\n  target_size: [320, 352]\n", encoding="utf-8"
    )
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    ready = realize(plan(resolve_arg(str(folder), None), "paddle"), store)
    assert (ready.path, ready.input_size, ready.plan.origin) == (folder, (320, 352), "file")


def test_one_folder_rule_and_one_config_beside_rule(tmp_path: Path) -> None:
    folder = tmp_path / "picodet"
    folder.mkdir()
    assert missing_inference_files(folder) == [
        "model.pdmodel or model.json",
        "model.pdiparams",
        "infer_cfg.yml",
    ]
    (folder / "model.json").write_text("{}", encoding="utf-8")  # paddlepaddle 3 (PIR)
    (folder / "model.pdiparams").write_bytes(b"p")
    assert missing_inference_files(folder) == ["infer_cfg.yml"]
    assert config_beside(folder) is None and find_paddle_model(folder).infer_cfg is None
    cfg = folder / "infer_cfg.yml"
    cfg.write_text("mode: paddle\n", encoding="utf-8")
    assert missing_inference_files(folder) == []
    onnx = folder / "model.onnx"
    onnx.write_bytes(b"x")
    assert (
        config_beside(folder) == config_beside(onnx) == find_paddle_model(folder).infer_cfg == cfg
    )


def _store_conversion(store: Store, mid: str, kind: str, url: str | None = None) -> Path:
    """A conversion of ``mid``'s ``kind`` tarball laid out in the store as ``convert``
    writes one (``converted/<label>/<key>/model.onnx`` + ``provenance.json``); its folder."""
    import json

    from picozoo.atomic import sha256_file

    folder = store.converted_dir(mid, "0123456789abcdef")
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    prov = {
        "schema": 1,
        "target": "onnx",
        "key": folder.name,
        "label": mid,
        "created": "2026-12-07T12:00:00+00:00",
        "options": {"opset": 13},
        "source": {"model_id": mid, "kind": kind,
                   "url": url or REG.get(mid).artifact(kind).url, "artifact_sha256": "ab" * 32},
        "output": {"file": "model.onnx", "sha256": sha256_file(folder / "model.onnx"),
                   "size": (folder / "model.onnx").stat().st_size},
    }  # fmt: skip
    (folder / "provenance.json").write_text(json.dumps(prov))
    return folder


def test_a_conversion_in_the_store_is_what_auto_and_converted_run(tmp_path: Path) -> None:
    """``convert`` then ``bench``: the ONNX picozoo converted (whatever its options) is run
    as it is under ``auto`` and ``converted`` -- nothing pulled, nothing converted again --
    and ``upstream`` still means upstream's file. Only a conversion of the tarball the
    registry names now, of the kind asked, and intact, is taken."""
    from picozoo.resolve import stored_onnx

    store = Store(Settings(cache_dir=tmp_path / "cache"))
    model = REG.get("picodet-s-416")
    assert stored_onnx(store, model, postprocess=False) is None
    folder = _store_conversion(store, model.id, "inference-nopp")
    item = stored_onnx(store, model, postprocess=False)
    assert item is not None and item.path == folder / "model.onnx"
    assert stored_onnx(store, model, postprocess=True) is None  # made without NMS

    target = _model(model.id)
    for source in ("auto", "converted"):
        p = plan(target, "onnxruntime", source=source, stored=item)
        assert (p.origin, p.kind, p.to, p.postprocess) == ("converted", "inference-nopp",
                                                            "onnx", False)  # fmt: skip
        ready = realize(p, store)  # no converter given: none is needed
        assert ready.path == folder / "model.onnx" and ready.cache_label == model.id
        assert ready.provenance["key"] == folder.name and ready.input_size == (416, 416)
    p = plan(target, "onnxruntime", source="upstream", stored=item)
    assert (p.origin, p.kind, p.stored) == ("upstream", "onnx-nopp", None)

    # damaged: not taken
    (folder / "model.onnx").chmod(0o644)
    (folder / "model.onnx").write_bytes(b"changed")
    assert stored_onnx(store, model, postprocess=False) is None


def test_a_conversion_of_another_tarball_is_not_taken(tmp_path: Path) -> None:
    from picozoo.resolve import stored_onnx

    store = Store(Settings(cache_dir=tmp_path / "cache"))
    _store_conversion(store, "picodet-s-416", "inference-nopp", url="https://old.example/x.tar")
    assert stored_onnx(store, REG.get("picodet-s-416"), postprocess=False) is None
