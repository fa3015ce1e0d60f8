"""Paddle -> ONNX end to end on small real Paddle models: paddle2onnx, onnxsim, parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")
pytest.importorskip("onnxsim")

import onnx
import onnxruntime as ort
from support.paddle_models import EXPECTED_MACS, EXPECTED_PARAMS, SIZE, mark_as_newer_paddle

from picozoo.convert import (
    ConversionError,
    NewerPaddleModelError,
    ParityError,
    ToolchainError,
    convert_paddle_dir_to_onnx,
    list_converted,
)
from picozoo.convert.pipeline import convert_to_cache
from picozoo.convert.store import CONVERTED_DIR, LOCK_PREFIX
from picozoo.convert.toolchain import check_paddle_version
from picozoo.errors import UsageError
from picozoo.lockfile import Lock, default_lock_path
from picozoo.modelinfo import inspect_model

VARIANTS = ["pir", "pir-sf", "legacy", "legacy-sf"]


def _ort_inputs(sess: ort.InferenceSession, batch: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    feeds = {}
    for i in sess.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("variant", VARIANTS)
def test_convert_end_to_end_parity(
    paddle_models: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    src = paddle_models[variant]
    result = convert_paddle_dir_to_onnx(src, tmp_path / "out")
    assert result.onnx_path == tmp_path / "out" / "model.onnx" and not result.cached
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov == result.provenance
    parity = prov["parity"]
    assert parity["passed"] is True
    assert len(parity["outputs"]) == 2
    scores, boxes = parity["outputs"]
    assert scores["shape"] == [1, 5, (SIZE // 2) ** 2] and boxes["shape"] == [1, 1024, 4]
    # scores: fp32 tolerance 1e-4 abs; boxes: 1e-3 + 1e-4*|x|; figures are real (> 0 allowed)
    assert (scores["atol"], scores["rtol"]) == (1e-4, 0.0)
    assert 0.0 <= scores["max_abs"] < 1e-4
    assert 0.0 <= boxes["max_abs"] < 1e-3 and boxes["max_rel"] < 1e-4
    assert set(parity["inputs"]) == ({"image", "scale_factor"} if "sf" in variant else {"image"})
    # the file on disk is a valid, simplified, fixed-shape model
    model = onnx.load(str(result.onnx_path))
    onnx.checker.check_model(model, full_check=True)
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims["image"] == [1, 3, SIZE, SIZE]
    assert prov["options"]["opset"] == 11 and prov["output"]["opset"] == 11
    assert prov["source"]["format"] == ("pir" if variant.startswith("pir") else "legacy")
    assert prov["tools"]["paddle2onnx"] == "2.1.0"
    assert prov["tools"]["paddlepaddle"].startswith("3.")


@pytest.mark.parametrize("variant", ["pir-nms", "legacy-nms"])
def test_convert_with_multiclass_nms(
    paddle_models: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    """Models ending in multiclass_nms3 (upstream's `inference` tarballs) convert with parity."""
    result = convert_paddle_dir_to_onnx(paddle_models[variant], tmp_path / "out")
    parity = result.provenance["parity"]
    assert parity["passed"]
    rows, count = parity["outputs"]
    assert rows["shape"][1] == 6 and rows["shape"][0] > 0  # some boxes survive NMS
    assert (rows["atol"], rows["rtol"]) == (1e-3, 1e-4) and rows["max_abs"] < 1e-3
    assert count["dtype"] == "int32" and count["max_abs"] == 0.0  # the count is exact
    assert "NonMaxSuppression" in inspect_model(result.onnx_path).op_histogram
    # run it like a user would: the ONNX model gives the same number of boxes as its count
    sess = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    out_rows, out_count = sess.run(None, _ort_inputs(sess))
    assert out_rows.shape[0] == int(out_count.sum())


@pytest.mark.parametrize("variant", ["pir-sf", "legacy-sf"])
def test_inspect_paddle_and_onnx_agree(
    paddle_models: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    src = paddle_models[variant]
    pinfo = inspect_model(src)
    assert pinfo.format == "paddle"
    assert pinfo.params == EXPECTED_PARAMS
    assert pinfo.flops == 2 * EXPECTED_MACS
    assert [t.name for t in pinfo.inputs] == ["image", "scale_factor"]
    assert pinfo.op_histogram["depthwise_conv2d"] == 1 and pinfo.op_histogram["conv2d"] == 2
    result = convert_paddle_dir_to_onnx(src, tmp_path / "o")
    import paddle

    # inspecting/converting must not leave paddle in static mode for the rest of the process
    assert paddle.in_dynamic_mode()
    oinfo = inspect_model(result.onnx_path)
    assert oinfo.format == "onnx" and oinfo.flops == pinfo.flops
    assert oinfo.op_histogram["Conv"] == 3 and oinfo.op_histogram["MatMul"] == 2
    assert {t.name: t.shape for t in oinfo.inputs}["image"] == [1, 3, SIZE, SIZE]
    d = oinfo.to_dict()
    assert "2 x MACs" in d["flops_convention"] and d["params"] > 0


def _tamper_box_weights(model: onnx.ModelProto) -> None:
    """Scale the weights of the last MatMul (the box regression) -- a 'wrong conversion'."""
    from onnx import numpy_helper

    last = [n for n in model.graph.node if n.op_type == "MatMul"][-1]
    tensors = list(model.graph.initializer) + [
        a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute
    ]
    for t in tensors:
        name = t.name or next(
            n.output[0] for n in model.graph.node if any(a.t is t for a in n.attribute)
        )
        if name in last.input:
            w = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array((w * 1.5).astype(w.dtype), t.name))
            return
    raise AssertionError("no MatMul weight found")


def test_tampered_weights_fail_parity_and_stay_out_of_cache(
    paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ParityError) as exc:
        convert_to_cache(
            paddle_models["legacy-sf"], cache_dir=cache, label="t", onnx_hook=_tamper_box_weights
        )
    err = exc.value
    msg = str(err)
    assert "parity check failed" in msg and "'fetch_name_1'" in msg and "max abs err" in msg
    assert "'fetch_name_0'" not in msg  # the scores are untouched and pass
    assert [f["name"] for f in err.failures] == ["fetch_name_1"]
    assert err.failures[0]["max_abs"] > 1e-3
    assert "discarded" in (err.hint or "")
    # nothing half-written: no key directory, no staging leftovers, no lock entry
    assert list((cache / CONVERTED_DIR / "t").iterdir()) == []
    assert list_converted("t", cache) == []
    assert not default_lock_path(cache).exists() or not any(
        k.startswith(LOCK_PREFIX) for k in json.loads(default_lock_path(cache).read_text())
    )


def test_cache_hit_provenance_and_lock(paddle_models: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = convert_to_cache(paddle_models["pir-sf"], cache_dir=cache, label="m1")
    assert not first.cached
    key = first.onnx_path.parent.name
    assert first.onnx_path == cache / CONVERTED_DIR / "m1" / key / "model.onnx"
    again = convert_to_cache(paddle_models["pir-sf"], cache_dir=cache, label="m1")
    assert again.cached and again.onnx_path == first.onnx_path
    assert again.provenance == first.provenance
    prov = first.provenance
    assert prov["key"] == key and prov["target"] == "onnx"
    assert prov["source"]["sha256"] and prov["source"]["model_file"] == "model.json"
    assert set(prov["tools"]) >= {"paddlepaddle", "paddle2onnx", "onnx", "onnxsim"}
    assert prov["options"]["simplify"] is True and prov["options"]["dynamic_batch"] is False
    entry = Lock.load(default_lock_path(cache)).get(f"{LOCK_PREFIX}m1/{key}/model.onnx")
    assert entry is not None and entry.sha256 == prov["output"]["sha256"]
    assert entry.size == first.onnx_path.stat().st_size
    listed = list_converted("m1", cache)
    assert [i["key"] for i in listed] == [key] and listed[0]["parity"]["passed"] is True
    # different options -> a different key, both kept
    other = convert_to_cache(paddle_models["pir-sf"], cache_dir=cache, label="m1", simplify=False)
    assert not other.cached and other.onnx_path.parent.name != key
    assert len(list_converted("m1", cache)) == 2


def test_dynamic_batch_and_input_shape(paddle_models: dict[str, Path], tmp_path: Path) -> None:
    dyn = convert_paddle_dir_to_onnx(paddle_models["legacy-sf"], tmp_path / "d", dynamic_batch=True)
    assert dyn.provenance["parity"]["inputs"]["image"] == [2, 3, SIZE, SIZE]
    sess = ort.InferenceSession(str(dyn.onnx_path), providers=["CPUExecutionProvider"])
    assert {i.name: i.shape[0] for i in sess.get_inputs()} == {
        "image": "batch",
        "scale_factor": "batch",
    }
    out = sess.run(None, _ort_inputs(sess, batch=3))
    assert out[0].shape[0] == 3 and out[1].shape == (3, 1024, 4)

    small = convert_paddle_dir_to_onnx(
        paddle_models["pir"], tmp_path / "s", input_shape={"image": [1, 3, 32, 32]}
    )
    assert small.provenance["parity"]["passed"]
    sess = ort.InferenceSession(str(small.onnx_path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 32, 32]
    assert small.provenance["parity"]["outputs"][0]["shape"] == [1, 5, 256]

    with pytest.raises(UsageError, match="unknown input"):
        convert_paddle_dir_to_onnx(paddle_models["pir"], tmp_path / "x", input_shape={"im": [1]})
    with pytest.raises(UsageError, match="dims given"):
        convert_paddle_dir_to_onnx(
            paddle_models["pir"], tmp_path / "x", input_shape={"image": [1, 3, 32]}
        )


def test_no_simplify_keeps_paddle2onnx_output(
    paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    raw = convert_paddle_dir_to_onnx(paddle_models["legacy"], tmp_path / "r", simplify=False)
    sim = convert_paddle_dir_to_onnx(paddle_models["legacy"], tmp_path / "s")
    n_raw = len(onnx.load(str(raw.onnx_path)).graph.node)
    n_sim = len(onnx.load(str(sim.onnx_path)).graph.node)
    assert raw.provenance["parity"]["passed"] and n_sim < n_raw


def test_model_from_newer_paddle_is_diagnosed(interp_model: Path, tmp_path: Path) -> None:
    # control: the unmodified model converts
    assert convert_paddle_dir_to_onnx(interp_model, tmp_path / "ok").provenance["parity"]["passed"]
    mark_as_newer_paddle(interp_model)
    with pytest.raises(NewerPaddleModelError) as exc:
        convert_paddle_dir_to_onnx(interp_model, tmp_path / "bad")
    text = str(exc.value)
    assert "paddlepaddle >= 3.3" in text and "paddlepaddle<3.3" in text and "\n" not in text
    assert not (tmp_path / "bad" / "model.onnx").exists()


def test_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match=r"no model\.pdmodel or model\.json"):
        convert_paddle_dir_to_onnx(tmp_path / "empty", tmp_path / "o")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.json").write_text("not json")
    (garbage / "model.pdiparams").write_bytes(b"\0" * 16)
    with pytest.raises(ConversionError, match="paddle2onnx could not convert"):
        convert_paddle_dir_to_onnx(garbage, tmp_path / "o")


@pytest.mark.parametrize("version", ["3.3.0", "3.4.1", "2.6.2", None])
def test_paddle_outside_supported_range(version: str | None) -> None:
    with pytest.raises(ToolchainError) as exc:
        check_paddle_version(version)
    assert "paddlepaddle>=3.0,<3.3" in str(exc.value)


def test_installed_paddle_is_supported() -> None:
    from picozoo.convert.toolchain import dist_version

    check_paddle_version(dist_version("paddlepaddle"))
