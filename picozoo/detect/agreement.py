"""How far two models' detections agree (a conversion, a lower precision, another engine).

Detections are matched greedily, best score first, to the same-class detection of the other
side with the highest IoU (>= ``iou``). ``agreement`` is matched / max(len(a), len(b)): 1.0
when every detection has its twin.

>>> import numpy as np
>>> from picozoo.detect.detections import Detections
>>> a = Detections(np.array([0, 1]), np.array([0.9, 0.8], "float32"),
...                np.array([[0, 0, 10, 10], [20, 20, 30, 30]], "float32"))
>>> b = Detections(np.array([0]), np.array([0.88], "float32"),
...                np.array([[0, 0, 10, 11]], "float32"))
>>> r = compare_detections(a, b)
>>> r["matched"], r["agreement"], round(r["max_score_diff"], 3)
(1, 0.5, 0.02)
"""

from __future__ import annotations

from typing import Any

from .detections import Detections
from .nms import iou_one_to_many


def compare_detections(a: Detections, b: Detections, *, iou: float = 0.5) -> dict[str, Any]:
    """Matched pairs, agreement, mean IoU of the pairs and their largest score difference."""
    import numpy as np

    used = np.zeros(len(b), dtype=bool)
    ious, diffs = [], []
    for i in np.argsort(-a.scores, kind="stable"):
        same = np.flatnonzero((b.labels == a.labels[i]) & ~used)
        if same.size == 0:
            continue
        overlaps = iou_one_to_many(a.boxes[i], b.boxes[same])
        j = int(np.argmax(overlaps))
        if overlaps[j] >= iou:
            used[same[j]] = True
            ious.append(float(overlaps[j]))
            diffs.append(abs(float(a.scores[i]) - float(b.scores[same[j]])))
    total = max(len(a), len(b))
    return {
        "a": len(a),
        "b": len(b),
        "matched": len(ious),
        "agreement": len(ious) / total if total else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "max_score_diff": max(diffs) if diffs else None,
    }


def agreement_on_images(
    detect_a: Any, detect_b: Any, images: list[Any], *, threshold: float = 0.3
) -> dict[str, Any]:
    """:func:`compare_detections` summed over ``images`` (RGB arrays), each side's detections
    cut at ``threshold``; ``detect_x(image) -> Detections``."""
    rows = [compare_detections(detect_a(im).above(threshold), detect_b(im).above(threshold))
            for im in images]  # fmt: skip
    matched = sum(r["matched"] for r in rows)
    total = sum(max(r["a"], r["b"]) for r in rows)
    diffs = [r["max_score_diff"] for r in rows if r["max_score_diff"] is not None]
    ious = [r["mean_iou"] for r in rows if r["mean_iou"] is not None]
    return {
        "images": len(images),
        "threshold": threshold,
        "matched": matched,
        "detections": total,
        "agreement": matched / total if total else 1.0,
        "mean_iou": sum(ious) / len(ious) if ious else None,
        "max_score_diff": max(diffs) if diffs else None,
    }
