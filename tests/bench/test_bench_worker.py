"""The measured loop and its inputs, run in-process on real functions; runtime-layer errors
become failed cells with their hint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from picozoo.bench import worker
from picozoo.bench.records import BenchSpec, Failure, Measurement
from picozoo.bench.worker import (
    CellFailure,
    make_feeds,
    make_input,
    measure,
    resolve_shape,
    warm_up,
)
from picozoo.errors import (
    EngineError,
    MissingDependencyError,
    ModelFileError,
    PicozooError,
    UsageError,
)
from picozoo.runtime import TensorInfo


def test_resolve_shape() -> None:
    assert resolve_shape("image", [1, 3, 800, 608], None) == ([1, 3, 800, 608], [])
    assert resolve_shape("image", ["N", 3, "H", "W"], (416, 320)) == ([1, 3, 416, 320], [])
    shape, notes = resolve_shape("image", [None, 3, None, None], None)
    assert shape == [1, 3, 320, 320] and "--input-size" in notes[0]
    with pytest.raises(CellFailure, match="cannot choose dimension 1"):
        resolve_shape("tokens", [1, "seq"], None)


def test_inputs_are_seeded_and_picodet_aware() -> None:
    a = make_input("image", [1, 3, 8, 8], "float32", (8, 8), seed=3)
    b = make_input("image", [1, 3, 8, 8], "float32", (8, 8), seed=3)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, make_input("image", [1, 3, 8, 8], "float32", (8, 8), seed=4))
    sf = make_input("scale_factor", [1, 2], "float32", (416, 416), seed=0)
    assert sf.tolist() == [[1.0, 1.0]]
    ims = make_input("im_shape", [1, 2], "float32", (416, 320), seed=0)
    assert ims.tolist() == [[416.0, 320.0]]
    assert make_input("mask", [4], "bool", (8, 8), seed=0).dtype == np.bool_


def test_feeds_follow_the_runtime_inputs() -> None:
    """Paddle reports [None, 3, None, None] and [None, 2]: the spec's size fills them in."""
    inputs = [
        TensorInfo("image", [None, 3, None, None], "float32"),
        TensorInfo("im_shape", [None, 2], "float32"),
    ]
    feeds, fed, notes = make_feeds(inputs, (96, 64), seed=0)
    assert [(f.name, f.shape, f.dtype) for f in fed] == [
        ("image", [1, 3, 96, 64], "float32"),
        ("im_shape", [1, 2], "float32"),
    ]
    assert feeds["image"].shape == (1, 3, 96, 64) and feeds["im_shape"].tolist() == [[96, 64]]
    assert notes == []


def test_measure_meets_both_min_iters_and_min_time() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        time.sleep(0.002)

    samples = measure(work, min_iters=5, min_time_s=0.1)  # time is the binding limit
    assert len(samples) == len(calls) >= 5
    assert sum(samples) >= 0.09e9
    assert all(s >= 2_000_000 for s in samples)
    calls.clear()
    samples = measure(work, min_iters=30, min_time_s=0.0)  # count is the binding limit
    assert len(samples) == 30 == len(calls)


def test_warm_up_auto_stops_when_stable_and_fixed_count_is_exact() -> None:
    delays = iter([0.03, 0.02, 0.01] + [0.001] * 500)
    samples, stable = warm_up(lambda: time.sleep(next(delays)), "auto")
    assert stable and 10 <= len(samples) < 30
    samples, stable = warm_up(lambda: None, 7)
    assert len(samples) == 7 and stable


def test_warm_up_auto_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "AUTO_WARMUP_MAX_ITERS", 20)
    sizes = iter(range(1, 1000))  # ever slower: never stable
    samples, stable = warm_up(lambda: time.sleep(next(sizes) * 1e-4), "auto")
    assert len(samples) == 20 and not stable


def test_onnxruntime_cell_in_process(tiny_onnx: Path) -> None:
    r = worker.run_spec(BenchSpec(tiny_onnx, "onnxruntime", 1, 2, 10, 0.0))
    assert len(r.samples_ns) == 10 == r.stats.n and r.warmup.n == 2
    s = r.engine_settings
    assert s["intra_op_num_threads"] == 1 and s["inter_op_num_threads"] == 1
    assert s["execution_mode"].endswith("ORT_SEQUENTIAL")
    assert s["graph_optimization_level"].endswith("ORT_ENABLE_ALL")
    assert s["providers"] == ["CPUExecutionProvider"]
    assert r.inputs == (TensorInfo("image", [1, 3, 64, 64], "float32"),)
    assert r.image_size() == (64, 64) and r.wall_s is None
    assert r.load_ms > 0 and r.first_inference_ms > 0 and r.peak_rss_mb > 10
    assert r.engine_version and r.stability.stable in (True, False)


class _BrokenRuntime:
    version = "0"
    settings: ClassVar[dict[str, Any]] = {}
    engine, precision, executed_precision, precision_note = "onnxruntime", "fp32", "fp32", ""

    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo("image", [1, 3, 8, 8], "float32")]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :\n  bad input")


@pytest.mark.parametrize(
    ("error", "stage"),
    [
        (MissingDependencyError("onnxruntime", "bench"), "import"),
        (EngineError("onnxruntime cannot load m.onnx: boom", hint="check the file"), "load"),
        (ModelFileError("m.onnx is not an .onnx file", hint="use --engine paddle"), "load"),
        (UsageError("unknown engine 'x'", hint="use one of: onnxruntime, paddle"), "spec"),
    ],
)
def test_runtime_errors_become_failed_cells_with_their_hint(
    monkeypatch: pytest.MonkeyPatch, error: PicozooError, stage: str
) -> None:
    def load(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(worker, "load", load)
    spec = BenchSpec(Path("m.onnx"), "onnxruntime").to_dict()
    assert worker.run(spec) == Failure(stage, error.message, error.hint)


def test_inference_and_spec_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "load", lambda *a, **k: _BrokenRuntime())
    spec = BenchSpec(Path("m.onnx"), "onnxruntime").to_dict()
    assert worker.run(spec) == Failure(
        "run",
        "inference failed: [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad input",
        "check the model inputs",
    )
    bad = worker.run({**spec, "threads": 0})
    assert isinstance(bad, Failure) and bad.stage == "spec" and "$.threads: 0 is below" in bad.error
    assert not isinstance(bad, Measurement)
