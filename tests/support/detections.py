"""Compare picozoo's detections with Paddle's: exact, except the order inside a score tie.

Paddle's ``multiclass_nms3`` (CPU kernel) orders its rows by class, then by score (a stable
sort, so its own ties keep candidate order). picozoo's decoder runs on another engine's
outputs (ONNX Runtime), whose scores differ from Paddle's by float noise (~1e-7): two
detections of one class whose scores are equal within the test's tolerance can come out in
either order, depending on the CPU's kernels. So inside each run of same-class detections whose
reference scores are equal within ``score_atol``, the order is free; everything else (count,
labels, boxes, scores and the order between runs) must match.
"""

from __future__ import annotations

from typing import Any


def tie_runs(labels: Any, scores: Any, score_atol: float) -> list[range]:
    """Index ranges of consecutive detections with one label whose scores are equal within
    ``score_atol`` (chained: each within ``score_atol`` of the one before).

    >>> tie_runs([0, 0, 0, 1], [0.9, 0.5, 0.5, 0.5], 1e-5)
    [range(0, 1), range(1, 3), range(3, 4)]
    """
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if (
            i == len(labels)
            or labels[i] != labels[i - 1]
            or abs(float(scores[i]) - float(scores[i - 1])) > score_atol
        ):
            runs.append(range(start, i))
            start = i
    return runs


def assert_same_detections(
    ours: Any, ref: Any, *, score_atol: float = 1e-5, box_rtol: float = 0.0, box_atol: float = 1e-3
) -> None:
    """Assert that ``ours`` and ``ref`` (:class:`picozoo.detect.detections.Detections`) hold
    the same detections in the same order, except that detections inside a tie run of ``ref``
    (:func:`tie_runs`) may come in any order. Boxes: ``box_rtol``/``box_atol``; scores:
    ``score_atol``."""
    import numpy as np

    assert len(ours) == len(ref), f"{len(ours)} detections, Paddle has {len(ref)}"
    labels, scores = np.asarray(ref.labels), np.asarray(ref.scores)
    assert np.asarray(ours.labels).tolist() == labels.tolist()
    order = np.arange(len(ref))
    for run in tie_runs(labels, scores, score_atol):
        if len(run) < 2:
            continue
        free = list(run)  # positions of ours in this run not matched yet
        for j in run:  # each reference detection takes the closest of ours in the same run
            err = [np.abs(ours.boxes[i] - ref.boxes[j]).max() for i in free]
            order[j] = free.pop(int(np.argmin(err)))
    np.testing.assert_allclose(
        np.asarray(ours.boxes)[order], ref.boxes, rtol=box_rtol, atol=box_atol
    )
    # each detection keeps its score, and each position its score: within a chained run, two
    # detections further apart than score_atol may not trade places
    np.testing.assert_allclose(np.asarray(ours.scores)[order], scores, rtol=0, atol=score_atol)
    np.testing.assert_allclose(np.asarray(ours.scores), scores, rtol=0, atol=score_atol)
