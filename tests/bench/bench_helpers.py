"""Helpers of the bench tests: small real ONNX models built with onnx.helper, the CLI in a
subprocess, and a Markdown table parser. (A uniquely named module, not conftest, so that test
modules can import it whatever other test directories do.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def build_conv_onnx(
    path: Path,
    *,
    size: int = 64,
    channels: int = 16,
    layers: int = 3,
    dynamic: bool = False,
    scale_factor: bool = False,
) -> Path:
    """A few Conv+Relu layers (input ``image`` 1x3xSIZExSIZE, or N x 3 x H x W with
    ``dynamic``), seeded weights, opset 13. ``scale_factor`` adds PicoDet's second input
    ``scale_factor`` [N, 2], multiplied into the output like upstream's post-processing."""
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
    in_shape: list[int | str] = ["N", 3, "H", "W"] if dynamic else [1, 3, size, size]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)]
    if scale_factor:
        inputs.append(helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, ["N", 2]))
        nodes.append(helper.make_node("ReduceSum", ["scale_factor"], ["sf_sum"], keepdims=0))
        nodes.append(helper.make_node("Mul", [prev, "sf_sum"], ["scaled"]))
        prev = "scaled"
    out_shape: list[int | str] = ["N", channels, "H", "W"] if dynamic else [1, channels, size, size]
    graph = helper.make_graph(
        nodes,
        "tiny_conv",
        inputs,
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


#: ``python -c`` program: pin this process (and so its workers) to CPU 0, then run the CLI.
ONE_CPU = (
    "import os, sys; os.sched_setaffinity(0, {0}); sys.argv[0] = 'picozoo'; "
    "from picozoo.cli import main; main(sys.argv[1:])"
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, one_cpu: bool = False
) -> Any:
    """The real console entry point in a subprocess (``one_cpu``: allowed to run on CPU 0
    only, as under ``taskset -c 0``)."""
    entry = ["-c", ONE_CPU] if one_cpu else ["-m", "picozoo"]
    return subprocess.run(
        [sys.executable, *entry, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=600,
    )


def md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text`` as rows of cells (header row first, no align row)."""
    import re

    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables
