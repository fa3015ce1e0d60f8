"""Fixtures for the bench tests: a small real ONNX model, and one real measured result
document shared by the report/merge/records tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import build_conv_onnx

from picozoo.bench.records import Document


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_conv_onnx(tmp_path_factory.mktemp("onnx") / "tiny_conv.onnx")


@pytest.fixture(scope="session")
def measured_doc(tiny_onnx: Path) -> Document:
    """A real result: the tiny model benched on 1 and 2 threads, once as a plain file and once
    labelled as registry model picodet-s-416 (so claims/ratio columns are filled), plus a
    missing file (a failed target)."""
    from picozoo.bench.suite import run_suite
    from picozoo.bench.targets import BenchTarget, file_target
    from picozoo.hub.registry import load_registry

    model = load_registry().get("picodet-s-416")
    targets = [
        file_target(tiny_onnx, "onnxruntime"),
        BenchTarget(model.id, "onnxruntime", tiny_onnx, model=model, input_size=model.input_size),
        file_target(tiny_onnx.parent / "missing.onnx", "onnxruntime"),
    ]
    return run_suite(targets, threads=[1, 2], warmup=2, min_iters=15, min_time_s=0.05)


@pytest.fixture()
def measured_json(measured_doc: Document) -> dict[str, Any]:
    """The real result exactly as a saved file holds it (a fresh copy per test)."""
    data: dict[str, Any] = json.loads(measured_doc.to_json())
    return data
