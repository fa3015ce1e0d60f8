"""The typed provenance record reads what every converter writes and writes it back unchanged
(cached conversions keep working); the parts picozoo reads are attributes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from picozoo.convert.result import ConversionResult
from picozoo.convert.run import copy_out
from picozoo.hub.store import Store
from picozoo.provenance import Provenance
from picozoo.settings import Settings

SOURCE_MODEL = {
    "model_id": "picodet-s-416",
    "kind": "inference-nopp",
    "url": "https://example.invalid/picodet_s_416_coco_lcnet_non_postprocess.tar",
    "artifact_sha256": "ab" * 32,
    "postprocess": False,
    "directory": "/c/unpacked/x",
    "model_file": "model.pdmodel",
    "params_file": "model.pdiparams",
    "format": "legacy",
    "model_sha256": "cd" * 32,
    "params_sha256": "ef" * 32,
    "sha256": "01" * 32,
}
ROW = {
    "index": 0,
    "name": "scores",
    "paddle_name": "save_infer_model/scale_0.tmp_1",
    "shape": [1, 3598, 80],
    "dtype": "float32",
    "atol": 0.0001,
    "rtol": 0.0,
    "max_abs": 1.1920928955078125e-06,
    "max_rel": 2.5e-05,
    "ok": True,
}
ONNX = {
    "schema": 1,
    "target": "onnx",
    "key": "8c58bcea9e5d5ec2",
    "label": "picodet-s-416",
    "created": "2026-12-07T15:52:40+00:00",
    "tools": {"paddle2onnx": "2.1.0", "onnx": "1.17.0", "onnxsim": "0.4.36"},
    "options": {
        "target": "onnx",
        "opset": 11,
        "simplify": True,
        "input_shape": None,
        "dynamic_batch": None,
        "parity_seed": 0,
        "pipeline": 2,
    },
    "source": SOURCE_MODEL,
    "output": {
        "opset": 11,
        "inputs": {"image": ["batch", 3, 416, 416]},
        "input_order": ["image"],
        "batch": {"dynamic": True, "why": "exported with a dynamic batch"},
        "outputs": {"scores": ["batch", 3598, 80], "boxes": ["batch", 3598, 4]},
        "file": "model.onnx",
        "sha256": "23" * 32,
        "size": 4_900_000,
    },
    "parity": {
        "passed": True,
        "seed": 0,
        "inputs": {"image": [2, 3, 416, 416]},
        "rule": "|onnx - paddle| <= atol + rtol * |paddle|",
        "outputs": [ROW, {**ROW, "index": 1, "name": "boxes", "shape": [1, 3598, 4]}],
    },
    "detection_agreement": {
        "images": "3 seeded synthetic 480x640 images",
        "threshold": 0.3,
        "matched": 0,
        "detections": 0,
        "agreement": 1.0,
        "mean_iou": None,
        "max_score_diff": None,
    },
    "seconds": {"paddle2onnx": 1.2, "onnxsim": 0.5, "parity": 2.0, "agreement": 1.1},
}
LITE = {
    **{k: ONNX[k] for k in ("schema", "key", "label", "created", "source")},
    "target": "lite",
    "tools": {"paddle_lite_opt": "paddlelite==2.14", "kind": "module", "path": ""},
    "options": {"target": "lite", "fp16": True, "valid_targets": "arm"},
    "output": {"file": "model.nb", "sha256": "45" * 32, "size": 1000},
    "parity": None,
    "parity_note": "no ARM runtime here: a .nb cannot be run for a parity check",
}
ENGINE = {
    **{k: ONNX[k] for k in ("schema", "key", "label", "created")},
    "target": "openvino",
    "tools": {"openvino": "2025.3.0"},
    "options": {
        "target": "openvino",
        "precision": "int8",
        "input_shape": None,
        "parity_seeds": [0, 1, 2, 3],
        "pipeline": 1,
    },
    "source": {
        "path": "/m/tiny.onnx",
        "onnx": {"from": "file"},
        "directory": "/m",
        "model_file": "tiny.onnx",
        "params_file": None,
        "format": "onnx",
        "model_sha256": "67" * 32,
        "params_sha256": None,
        "sha256": "67" * 32,
    },
    "source_onnx": "/m/tiny.onnx",
    "converter": {"call": "_tools.mnnconvert", "args": ["-f", "ONNX"]},
    "output": {
        "inputs": {"image": [1, 3, 64, 64]},
        "input_order": ["image"],
        "outputs": {"scores0": [1, 64, 3]},
        "weights": "fp32",
        "engine_names": {"inputs": {"image": "in0"}, "outputs": {"scores0": "out0"}},
        "file": "model.xml",
        "sha256": "89" * 32,
        "size": 2000,
        "files": {"model.bin": {"sha256": "aa" * 32, "size": 30000}},
    },
    "parity": {
        "passed": "reported",
        "seed": 0,
        "inputs": {"image": [1, 3, 64, 64]},
        "rule": "|engine - onnxruntime| <= atol + rtol * |onnxruntime|, worst over seeds",
        "outputs": [
            {**ROW, "ok": False, "max_abs": 0.03, "problem": "max abs err 0.03 > tolerance"},
            {"name": "(outputs)", "paddle_name": None, "ok": False, "problem": "1 vs 2 outputs"},
        ],
        "within_fp32_tolerance": False,
        "reference": "onnxruntime",
        "engine": "openvino",
        "precision": "int8",
        "seeds": [0, 1, 2, 3],
        "engine_settings": {"INFERENCE_PRECISION_HINT": "f32"},
        "agreement": {"skipped": "outputs are not a PicoDet's: no scores"},
    },
    "seconds": {"reference": 0.3, "convert": 1.0, "parity": 0.8},
}


@pytest.mark.parametrize("written", [ONNX, LITE, ENGINE], ids=["onnx", "lite", "engine"])
def test_every_written_provenance_reads_and_writes_back_unchanged(written: dict[str, Any]) -> None:
    original = copy.deepcopy(written)
    record = Provenance.from_json(written)
    assert record.to_json() == original
    assert json.dumps(record.to_json(), sort_keys=True) == json.dumps(original, sort_keys=True)
    assert Provenance.from_json(record.to_json()) == record
    assert written == original  # reading does not change the input


def test_the_parts_picozoo_reads_are_attributes() -> None:
    onnx, lite, engine = (Provenance.from_json(d) for d in (ONNX, LITE, ENGINE))
    assert onnx.parity is not None and onnx.parity.passed is True
    assert onnx.parity.outputs[1].shape == [1, 3598, 4] and onnx.parity.max_abs == ROW["max_abs"]
    assert onnx.output.batch is not None and onnx.output.batch.why.startswith("exported")
    assert onnx.detection_agreement is not None and onnx.detection_agreement.agreement == 1.0
    assert onnx.source.without_postprocess and onnx.options.run_precision == "fp32"
    assert lite.parity is None and lite.parity_passed is None
    assert lite.options.run_precision == "fp16"
    assert engine.parity_passed == "reported" and engine.options.run_precision == "int8"
    assert engine.parity is not None and engine.parity.agreement is not None
    assert engine.parity.agreement.skipped and engine.parity.outputs[1].index is None
    assert engine.output.files is not None and engine.output.files["model.bin"].size == 30000
    assert not engine.source.without_postprocess and engine.source.params_file is None


def test_store_and_copy_out_read_a_cached_provenance(tmp_path: Path) -> None:
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    final = store.converted_dir("local-tiny", ENGINE["key"])
    final.mkdir(parents=True)
    (final / "provenance.json").write_text(json.dumps(ENGINE, indent=2, sort_keys=True) + "\n")
    (final / "model.xml").write_text("<net/>")
    (final / "model.bin").write_bytes(b"\0" * 8)
    (item,) = store.converted("local-tiny")
    assert item.target == "openvino" and item.path == final / "model.xml"
    assert item.to_dict()["parity"] == {"passed": "reported", "max_abs": 0.03}
    assert item.to_dict()["options"] == ENGINE["options"] and item.source_kind is None
    result = ConversionResult(item.path, item.provenance, cached=True, label="local-tiny")
    assert result.to_dict()["parity"] == ENGINE["parity"]
    dest = copy_out(result, tmp_path / "out")
    assert dest.name == "local-tiny-int8.xml"
    assert (tmp_path / "out" / "local-tiny-int8.bin").read_bytes() == b"\0" * 8
    copied = tmp_path / "out" / "local-tiny-int8.openvino.provenance.json"
    assert json.loads(copied.read_text()) == ENGINE
