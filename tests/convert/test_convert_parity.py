"""The comparison rules of the parity check, on hand-made arrays (no Paddle needed)."""

from __future__ import annotations

import numpy as np

from picozoo.convert.parity import compare, make_inputs, tolerance_for


def _one(ref: np.ndarray, got: np.ndarray) -> dict:
    (row,) = compare((["p"], [ref]), (["o"], [got]))
    return row


def test_scores_fail_above_1e4_abs() -> None:
    ref = np.full((1, 80, 10), 0.5, np.float32)
    assert _one(ref, ref + 5e-5)["ok"]
    bad = _one(ref, ref + 2e-4)
    assert not bad["ok"] and abs(bad["max_abs"] - 2e-4) < 1e-6 and "max abs err" in bad["problem"]


def test_boxes_use_abs_plus_rel_tolerance() -> None:
    ref = np.array([[[100.0, 200.0, 300.0, 400.0]]], np.float32)
    assert tolerance_for([1, 1, 4], "float32") == (1e-3, 1e-4)
    assert _one(ref, ref + 0.01)["ok"]  # 0.01 px <= 1e-3 + 1e-4 * 100 (and more for larger)
    row = _one(ref, ref + 0.2)
    assert not row["ok"] and row["max_rel"] > 1e-4


def test_integers_exact_shapes_and_nan() -> None:
    counts = np.array([3], np.int32)
    assert _one(counts, counts)["ok"] and not _one(counts, counts + 1)["ok"]
    ref = np.zeros((1, 5, 7), np.float32)
    assert "shape" in _one(ref, np.zeros((1, 5, 8), np.float32))["problem"]
    nan = ref.copy()
    nan[0, 0, 0] = np.nan
    assert not _one(ref, nan)["ok"]
    (row,) = compare((["a", "b"], [ref, ref]), (["a"], [ref]))
    assert not row["ok"] and "2 outputs" in row["problem"]


def test_inputs_are_seeded_and_typed() -> None:
    shapes = {"image": [1, 3, 8, 8], "scale_factor": [1, 2], "im_shape": [1, 2]}
    a = make_inputs(shapes, {}, seed=0)
    b = make_inputs(shapes, {}, seed=0)
    assert all(np.array_equal(a[k], b[k]) for k in shapes)
    assert a["im_shape"].tolist() == [[8.0, 8.0]]
    assert ((a["scale_factor"] >= 0.5) & (a["scale_factor"] <= 2.0)).all()
    assert not np.array_equal(a["image"], make_inputs(shapes, {}, seed=1)["image"])
