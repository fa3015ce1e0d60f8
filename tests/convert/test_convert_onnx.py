"""Paddle -> ONNX end to end on small real Paddle models: paddle2onnx, onnxsim, parity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from support.needs import needs
from support.paddle_models import EXPECTED_MACS, EXPECTED_PARAMS, SIZE, mark_as_newer_paddle

from picozoo.convert import convert, convert_paddle_dir_to_onnx
from picozoo.convert.cached import convert_cached
from picozoo.convert.sources import local_source
from picozoo.convert.to_onnx import onnx_options, onnx_recipe
from picozoo.errors import (
    ConversionError,
    ExitCode,
    ModelFileError,
    NewerPaddleModelError,
    ParityError,
    UsageError,
)
from picozoo.hub.store import CONVERTED_PIN_PREFIX, Store
from picozoo.modelinfo import inspect_model
from picozoo.provenance import Batch, Provenance
from picozoo.targets import Target

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

pytestmark = needs("paddle", "paddle2onnx", "onnxsim")
VARIANTS = ["pir", "pir-sf", "legacy", "legacy-sf"]


def _local(path: Path) -> Target:
    return Target(str(path), path=path)


def _ort_inputs(sess: ort.InferenceSession, batch: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    feeds = {}
    for i in sess.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    return feeds


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_convert_end_to_end_parity(
    paddle_models: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    src = paddle_models[variant]
    result = convert_paddle_dir_to_onnx(src, tmp_path / "out")
    assert result.path == tmp_path / "out" / "model.onnx" and not result.cached
    written = json.loads((tmp_path / "out" / "provenance.json").read_text())
    prov = result.provenance
    assert written == prov.to_json() and Provenance.from_json(written) == prov
    parity = prov.parity
    assert parity is not None and parity.passed is True
    assert len(parity.outputs) == 2
    scores, boxes = parity.outputs
    # exported with a dynamic batch: it stays symbolic, and parity runs at batch 2
    assert scores.shape == [2, 5, (SIZE // 2) ** 2] and boxes.shape == [2, 1024, 4]
    # scores: fp32 tolerance 1e-4 abs; boxes: 1e-3 + 1e-4*|x|; figures are real (> 0 allowed)
    assert (scores.atol, scores.rtol) == (1e-4, 0.0)
    assert scores.max_abs is not None and 0.0 <= scores.max_abs < 1e-4
    assert boxes.max_abs is not None and boxes.max_rel is not None
    assert 0.0 <= boxes.max_abs < 1e-3 and boxes.max_rel < 1e-4
    assert set(parity.inputs or {}) == ({"image", "scale_factor"} if "sf" in variant else {"image"})
    # the file on disk is a valid, simplified model: fixed H x W, symbolic batch
    import onnx

    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    dims = {
        i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
    assert dims["image"] == ["batch", 3, SIZE, SIZE]
    assert prov.output.batch == Batch(dynamic=True, why="exported with a dynamic batch")
    assert prov.options.opset == 11 and prov.output.opset == 11
    assert prov.source.format == ("pir" if variant.startswith("pir") else "legacy")
    assert prov.tools is not None and prov.tools["paddle2onnx"] == "2.1.0"
    assert prov.tools["paddlepaddle"].startswith("3.")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["pir-nms", "legacy-nms"])
def test_convert_with_multiclass_nms(
    paddle_models: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    """Models ending in multiclass_nms3 (upstream's `inference` tarballs) convert with parity."""
    result = convert_paddle_dir_to_onnx(paddle_models[variant], tmp_path / "out")
    parity = result.provenance.parity
    assert parity is not None and parity.passed
    rows, count = parity.outputs
    assert rows.shape is not None and rows.max_abs is not None
    assert rows.shape[1] == 6 and rows.shape[0] > 0  # some boxes survive NMS
    assert (rows.atol, rows.rtol) == (1e-3, 1e-4) and rows.max_abs < 1e-3
    assert count.dtype == "int32" and count.max_abs == 0.0  # the count is exact
    assert "NonMaxSuppression" in inspect_model(result.path).op_histogram
    # run it like a user would: the ONNX model gives the same number of boxes as its count
    import onnxruntime as ort

    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    out_rows, out_count = sess.run(None, _ort_inputs(sess))
    assert out_rows.shape[0] == int(out_count.sum())


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["legacy-sf", "pir-sf", "legacy-nms", "pir-nms"])
def test_inputs_keep_paddle_feed_order_and_upstream_shapes(
    paddle_models: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    """paddle2onnx lists a legacy program's inputs as [scale_factor, image]; the converted model
    keeps Paddle's [image, scale_factor], so inputs fed by position give Paddle's results."""
    import onnx
    import onnxruntime as ort

    from picozoo.convert.p2o import paddle_to_onnx
    from picozoo.convert.parity import compare
    from picozoo.paddle_dir import find_paddle_model
    from picozoo.runtime import load

    src = paddle_models[variant]
    paddle_rt = load("paddle", src, threads=1, reference=True)
    order = [i.name for i in paddle_rt.inputs()]
    assert order == ["image", "scale_factor"]
    raw = onnx.load_from_string(paddle_to_onnx(find_paddle_model(src), opset=11))
    raw_order = [i.name for i in raw.graph.input]
    assert raw_order == (order[::-1] if variant.startswith("legacy") else order)  # the bug

    result = convert_paddle_dir_to_onnx(src, tmp_path / "o")
    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == order
    assert result.provenance.output.input_order == order
    # batch symbolic as exported, except after NMS (paddle2onnx converts it for one image)
    batch: int | str = 1 if variant.endswith("-nms") else "batch"
    assert [i.shape for i in sess.get_inputs()] == [[batch, 3, SIZE, SIZE], [batch, 2]]
    # fed by position, as a Paddle user feeds them
    rng = np.random.default_rng(3)
    values = [rng.standard_normal((1, 3, SIZE, SIZE)).astype("float32"),
              np.array([[1.5, 0.75]], "float32")]  # fmt: skip
    want = paddle_rt.run(dict(zip(order, values, strict=True)))
    got = sess.run(None, {i.name: v for i, v in zip(sess.get_inputs(), values, strict=True)})
    rows = compare((order, want), (order, got))
    assert rows and all(r["ok"] for r in rows), rows
    if variant.endswith("-nms"):
        with pytest.raises(UsageError, match="multiclass_nms3") as exc:
            convert_paddle_dir_to_onnx(src, tmp_path / "dyn", dynamic_batch=True)
        assert not (tmp_path / "dyn" / "model.onnx").exists()
        assert exc.value.exit_code == ExitCode.USAGE


@pytest.mark.slow
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
    oinfo = inspect_model(result.path)
    assert oinfo.format == "onnx" and oinfo.flops == pinfo.flops
    assert oinfo.op_histogram["Conv"] == 3 and oinfo.op_histogram["MatMul"] == 2
    assert [t.name for t in oinfo.inputs] == [t.name for t in pinfo.inputs]  # Paddle's order
    assert {t.name: t.shape for t in oinfo.inputs}["image"] == ["batch", 3, SIZE, SIZE]
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


@pytest.mark.slow
def test_tampered_weights_fail_parity_and_stay_out_of_cache(
    paddle_models: dict[str, Path], store: Store
) -> None:
    src = paddle_models["legacy-sf"]
    options = onnx_options(opset=11, simplify=True, input_shape=None, dynamic_batch=False)
    recipe = onnx_recipe(options, onnx_hook=_tamper_box_weights)
    with pytest.raises(ParityError) as exc:
        convert_cached(store, recipe, local_source(src))
    err = exc.value
    assert err.exit_code == ExitCode.PARITY == 10
    msg = str(err)
    assert "parity check failed" in msg and "'fetch_name_1'" in msg and "max abs err" in msg
    assert "'fetch_name_0'" not in msg  # the scores are untouched and pass
    assert [f["name"] for f in err.failures] == ["fetch_name_1"]
    assert err.failures[0]["max_abs"] > 1e-3
    assert "discarded" in (err.hint or "")
    # nothing half-written: no key directory, no staging leftovers, no pin
    assert list((store.converted_root / "local-legacy-sf").iterdir()) == []
    assert store.converted("local-legacy-sf") == []
    pins = store.settings.pins_path
    assert not pins.exists() or CONVERTED_PIN_PREFIX not in pins.read_text()
    # control: the same recipe without the tampering converts and is cached
    good = convert(store, _local(src))
    assert good.provenance.parity_passed and store.converted("local-legacy-sf")


@pytest.mark.slow
def test_cache_hit_provenance_and_pin(paddle_models: dict[str, Path], store: Store) -> None:
    src = paddle_models["pir-sf"]
    messages: list[str] = []
    first = convert(store, _local(src), progress=messages.append)
    assert not first.cached and first.label == "local-pir-sf"
    assert any(m.startswith("local-pir-sf: parity ok") for m in messages)
    key = first.path.parent.name
    assert first.path == store.converted_root / "local-pir-sf" / key / "model.onnx"
    again = convert(store, _local(src))
    assert again.cached and again.path == first.path
    assert again.provenance == first.provenance
    prov = first.provenance
    assert prov.key == key and prov.target == "onnx" and prov.label == "local-pir-sf"
    assert prov.source.sha256 and prov.source.model_file == "model.json"
    assert prov.source.path == str(src.resolve())
    assert set(prov.tools or {}) >= {"paddlepaddle", "paddle2onnx", "onnx", "onnxsim"}
    options = prov.options.to_json()
    assert options["simplify"] is True and options["dynamic_batch"] is None
    entry = store.pins().get(f"{CONVERTED_PIN_PREFIX}local-pir-sf/{key}/model.onnx")
    assert entry is not None and entry.sha256 == prov.output.sha256
    assert entry.size == first.path.stat().st_size
    listed = store.converted("local-pir-sf")
    assert [i.key for i in listed] == [key] and listed[0].to_dict()["parity"]["passed"] is True
    # different options -> a different key, both kept
    other = convert(store, _local(src), simplify=False)
    assert not other.cached and other.path.parent.name != key
    assert len(store.converted("local-pir-sf")) == 2
    with pytest.raises(UsageError, match="--fp16 applies to --to lite only"):
        convert(store, _local(src), fp16=True)
    with pytest.raises(UsageError, match="opset 99 is out of range"):
        convert(store, _local(src), opset=99)


@pytest.mark.slow
def test_dynamic_batch_and_input_shape(paddle_models: dict[str, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    dyn = convert_paddle_dir_to_onnx(paddle_models["legacy-sf"], tmp_path / "d", dynamic_batch=True)
    assert dyn.provenance.parity is not None
    assert (dyn.provenance.parity.inputs or {})["image"] == [2, 3, SIZE, SIZE]
    sess = ort.InferenceSession(str(dyn.path), providers=["CPUExecutionProvider"])
    assert {i.name: i.shape[0] for i in sess.get_inputs()} == {
        "image": "batch",
        "scale_factor": "batch",
    }
    out = sess.run(None, _ort_inputs(sess, batch=3))
    assert out[0].shape[0] == 3 and out[1].shape == (3, 1024, 4)

    fixed = convert_paddle_dir_to_onnx(
        paddle_models["legacy-sf"], tmp_path / "f", dynamic_batch=False
    )
    sess = ort.InferenceSession(str(fixed.path), providers=["CPUExecutionProvider"])
    assert [i.shape for i in sess.get_inputs()] == [[1, 3, SIZE, SIZE], [1, 2]]
    assert fixed.provenance.output.batch == Batch(dynamic=False, why="--fixed-batch")

    small = convert_paddle_dir_to_onnx(
        paddle_models["pir"], tmp_path / "s", input_shape={"image": [1, 3, 32, 32]}
    )
    assert small.provenance.parity is not None and small.provenance.parity.passed
    sess = ort.InferenceSession(str(small.path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 32, 32]
    assert small.provenance.parity.outputs[0].shape == [1, 5, 256]

    with pytest.raises(UsageError, match="unknown input"):
        convert_paddle_dir_to_onnx(paddle_models["pir"], tmp_path / "x", input_shape={"im": [1]})
    with pytest.raises(UsageError, match="dims given"):
        convert_paddle_dir_to_onnx(
            paddle_models["pir"], tmp_path / "x", input_shape={"image": [1, 3, 32]}
        )


@pytest.mark.slow
def test_no_simplify_keeps_paddle2onnx_output(
    paddle_models: dict[str, Path], tmp_path: Path
) -> None:
    import onnx

    raw = convert_paddle_dir_to_onnx(paddle_models["legacy"], tmp_path / "r", simplify=False)
    sim = convert_paddle_dir_to_onnx(paddle_models["legacy"], tmp_path / "s")
    n_raw = len(onnx.load(str(raw.path)).graph.node)
    n_sim = len(onnx.load(str(sim.path)).graph.node)
    assert raw.provenance.parity_passed and n_sim < n_raw


@pytest.mark.slow
def test_model_from_newer_paddle_is_diagnosed(interp_model: Path, tmp_path: Path) -> None:
    # control: the unmodified model converts
    assert convert_paddle_dir_to_onnx(interp_model, tmp_path / "ok").provenance.parity_passed
    mark_as_newer_paddle(interp_model)
    with pytest.raises(NewerPaddleModelError) as exc:
        convert_paddle_dir_to_onnx(interp_model, tmp_path / "bad")
    text = str(exc.value)
    assert "paddlepaddle >= 3.3" in text and "paddlepaddle<3.3" in text and "\n" not in text
    assert not (tmp_path / "bad" / "model.onnx").exists()


def test_not_a_model(tmp_path: Path, store: Store) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match=r"no model\.pdmodel or model\.json") as bad:
        convert_paddle_dir_to_onnx(tmp_path / "empty", tmp_path / "o")
    assert bad.value.exit_code == ExitCode.USAGE
    with pytest.raises(ModelFileError, match="no such file"):
        convert(store, _local(tmp_path / "nowhere"))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.json").write_text("not json")
    (garbage / "model.pdiparams").write_bytes(b"\0" * 16)
    with pytest.raises(ConversionError, match=r"cannot convert .* not a PIR program") as exc:
        convert(store, _local(garbage))  # read before paddle2onnx sees it
    assert exc.value.exit_code == ExitCode.CONVERSION
    assert exc.value.__cause__ is not None or exc.value.__context__ is not None
    assert store.converted("local-garbage") == []
