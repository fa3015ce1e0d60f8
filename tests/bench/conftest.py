"""Fixtures for the bench tests: small real ONNX models built with onnx.helper, and one real
measured result document shared by the report/merge tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def build_conv_onnx(path: Path, *, size: int = 64, channels: int = 16, layers: int = 3) -> Path:
    """A few Conv+Relu layers (static input 1x3xSIZExSIZE), seeded weights, opset 13."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    cin, prev = 3, "image"
    for i in range(layers):
        w = rng.standard_normal((channels, cin, 3, 3)).astype(np.float32) * 0.1
        b = np.zeros(channels, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        cin, prev = channels, f"r{i}"
    graph = helper.make_graph(
        nodes,
        "tiny_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, channels, size, size])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """The real console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_conv_onnx(tmp_path_factory.mktemp("onnx") / "tiny_conv.onnx")


@pytest.fixture(scope="session")
def measured_doc(tiny_onnx: Path) -> dict[str, Any]:
    """A real result: the tiny model benched on 1 and 2 threads, once as a plain file and once
    labelled as registry model picodet-s-416 (so claims/ratio columns are filled)."""
    from picozoo.bench.suite import run_suite
    from picozoo.bench.targets import Target, file_target
    from picozoo.registry import load_registry

    model = load_registry().get("picodet-s-416")
    targets = [
        file_target(str(tiny_onnx), "onnxruntime"),
        Target(
            label=model.id,
            engine="onnxruntime",
            path=tiny_onnx,
            model=model,
            input_size=model.input_size,
        ),
        file_target(str(tiny_onnx.parent / "missing.onnx"), "onnxruntime"),
    ]
    doc = run_suite(targets, threads=[1, 2], warmup=2, min_iters=15, min_time_s=0.05)
    return json.loads(json.dumps(doc))  # exactly what a saved file holds
