"""The comparison of picozoo's detections with Paddle's (``support.detections``) fails on a
real reordering and forgives only a swap inside a score tie."""

from __future__ import annotations

import numpy as np
import pytest
from support.detections import assert_same_detections

from picozoo.detect.detections import Detections

BOXES = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40], [1, 1, 4, 4]], "float32")


def _dets(labels: list[int], scores: list[float], order: list[int]) -> Detections:
    return Detections(np.array(labels)[order], np.array(scores, "float32")[order], BOXES[order])


def test_identical_detections_pass() -> None:
    ref = _dets([0, 0, 0, 1], [0.9, 0.5, 0.3, 0.8], [0, 1, 2, 3])
    assert_same_detections(ref, ref)


def test_a_swap_inside_a_score_tie_passes() -> None:
    labels, scores = [0, 0, 0, 1], [0.9, 0.5, 0.5 + 2e-7, 0.8]
    ref = _dets(labels, scores, [0, 1, 2, 3])
    assert_same_detections(_dets(labels, scores, [0, 2, 1, 3]), ref)


def test_a_swap_across_different_scores_fails() -> None:
    labels, scores = [0, 0, 0, 1], [0.9, 0.5, 0.3, 0.8]
    ref = _dets(labels, scores, [0, 1, 2, 3])
    with pytest.raises(AssertionError):
        assert_same_detections(_dets(labels, scores, [1, 0, 2, 3]), ref)


def test_equal_scores_of_different_classes_keep_class_order() -> None:
    """Rows are by class first: a tie across classes is no tie."""
    labels, scores = [0, 0, 1, 1], [0.9, 0.5, 0.5, 0.2]
    ref = _dets(labels, scores, [0, 1, 2, 3])
    with pytest.raises(AssertionError):
        assert_same_detections(_dets([0, 1, 0, 1], scores, [0, 2, 1, 3]), ref)


def test_a_tie_with_a_different_box_fails() -> None:
    """Inside a tie the order is free, the boxes are not."""
    labels, scores = [0, 0, 0, 1], [0.9, 0.5, 0.5, 0.8]
    ref = _dets(labels, scores, [0, 1, 2, 3])
    moved = _dets(labels, scores, [0, 2, 1, 3])
    moved.boxes[1] += 1.0
    with pytest.raises(AssertionError):
        assert_same_detections(moved, ref)


def test_a_chained_run_keeps_its_ends_apart() -> None:
    """0.5, 0.500008, 0.500016 chain into one run at 1e-5, but its ends are 1.6e-5 apart."""
    labels, scores = [0, 0, 0, 1], [0.500016, 0.500008, 0.5, 0.8]
    ref = _dets(labels, scores, [0, 1, 2, 3])
    assert_same_detections(_dets(labels, scores, [1, 0, 2, 3]), ref)  # neighbours: a tie
    with pytest.raises(AssertionError):
        assert_same_detections(_dets(labels, scores, [2, 1, 0, 3]), ref)
