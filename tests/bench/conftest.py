"""Fixtures for the bench tests: a small real ONNX model, and one real measured result
document shared by the report/merge tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_helpers import build_conv_onnx


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
