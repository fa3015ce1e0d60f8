"""The measured loop and its inputs, run in-process on real functions."""

from __future__ import annotations

import time

import numpy as np
import pytest

from picozoo.bench import worker
from picozoo.bench.worker import CellFailure, make_input, measure, resolve_shape, warm_up


def test_resolve_shape() -> None:
    assert resolve_shape("image", [1, 3, 800, 608], None) == ([1, 3, 800, 608], [])
    assert resolve_shape("image", ["N", 3, "H", "W"], (416, 320)) == ([1, 3, 416, 320], [])
    shape, notes = resolve_shape("image", [-1, 3, -1, -1], None)
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


def test_onnxruntime_cell_in_process(tiny_onnx) -> None:  # type: ignore[no-untyped-def]
    r = worker.run_spec(
        {
            "path": str(tiny_onnx),
            "engine": "onnxruntime",
            "threads": 1,
            "warmup": 2,
            "min_iters": 10,
            "min_time_s": 0,
        }
    )
    assert r["ok"] and len(r["samples_ns"]) == 10 and r["warmup"]["n"] == 2
    s = r["engine_settings"]
    assert s["intra_op_num_threads"] == 1 and s["inter_op_num_threads"] == 1
    assert s["execution_mode"].endswith("ORT_SEQUENTIAL")
    assert s["graph_optimization_level"].endswith("ORT_ENABLE_ALL")
    assert s["providers"] == ["CPUExecutionProvider"]
    assert r["inputs"] == [{"name": "image", "shape": [1, 3, 64, 64], "dtype": "float32"}]
    assert r["load_ms"] > 0 and r["first_inference_ms"] > 0 and r["peak_rss_mb"] > 10
