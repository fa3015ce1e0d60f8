"""Multi-class NMS with the semantics of Paddle's ``multiclass_nms3`` CPU kernel.

Per class: candidates scoring strictly above ``score_threshold``, stable-sorted by score
(descending), the first ``nms_top_k`` kept; greedy suppression keeps a box when its IoU with
every box kept so far is ``<= nms_threshold`` (IoU of ``normalized`` boxes: no +1, in
float32). If more than ``keep_top_k`` survive in all, the best ``keep_top_k`` by score (stable)
are kept. Output order: by class id, then by score - exactly the rows the exported
post-processed model returns.

>>> import numpy as np
>>> from picozoo.paddle_dir import NmsSettings
>>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], "float32")
>>> scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.0]], "float32")
>>> d = multiclass_nms(boxes, scores, NmsSettings(0.25, 0.5, 100, 10))
>>> d.labels.tolist(), [round(float(x), 3) for x in d.scores]
([0, 0, 1], [0.9, 0.3, 0.7])
"""

from __future__ import annotations

from typing import Any

from ..paddle_dir import NmsSettings
from .detections import Detections


def iou_one_to_many(box: Any, boxes: Any) -> Any:
    """IoU of one box with many, in float32, as Paddle's ``JaccardOverlap`` (normalized)."""
    import numpy as np

    f = np.float32
    zero = f(0.0)
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = (ix2 - ix1) * (iy2 - iy1)
    area = np.where(
        (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]),
        zero,
        (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
    )
    own = zero if box[2] < box[0] or box[3] < box[1] else (box[2] - box[0]) * (box[3] - box[1])
    disjoint = (
        (boxes[:, 0] > box[2])
        | (boxes[:, 2] < box[0])
        | (boxes[:, 1] > box[3])
        | (boxes[:, 3] < box[1])
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (own + area - inter)
    return np.where(disjoint, zero, iou).astype("float32")


def _nms_one_class(boxes: Any, scores: Any, settings: NmsSettings) -> list[int]:
    import numpy as np

    cand = np.flatnonzero(scores > np.float32(settings.score_threshold))
    if cand.size == 0:
        return []
    order = cand[np.argsort(-scores[cand], kind="stable")]
    if settings.nms_top_k > -1:
        order = order[: settings.nms_top_k]
    kept: list[int] = []
    kept_boxes = np.empty((len(order), 4), dtype="float32")
    thr = np.float32(settings.nms_threshold)
    for idx in order:
        if kept and (iou_one_to_many(boxes[idx], kept_boxes[: len(kept)]) > thr).any():
            continue
        kept_boxes[len(kept)] = boxes[idx]
        kept.append(int(idx))
    return kept


def multiclass_nms(boxes: Any, scores: Any, settings: NmsSettings) -> Detections:
    """NMS over ``boxes`` [N, 4] with per-class ``scores`` [N, C] (see the module docstring)."""
    import numpy as np

    boxes = np.asarray(boxes, dtype="float32")
    scores = np.asarray(scores, dtype="float32")
    picked: list[tuple[int, int]] = []  # (class, box index), by class then selection order
    for c in range(scores.shape[1]):
        picked += [(c, i) for i in _nms_one_class(boxes, scores[:, c], settings)]
    if settings.keep_top_k > -1 and len(picked) > settings.keep_top_k:
        s = np.array([scores[i, c] for c, i in picked], dtype="float32")
        best = np.argsort(-s, kind="stable")[: settings.keep_top_k]
        chosen = [picked[k] for k in best]
        picked = sorted(chosen, key=lambda ci: ci[0])  # stable: score order within a class
    if not picked:
        return Detections.empty()
    cls = np.array([c for c, _ in picked], dtype="int64")
    idx = np.array([i for _, i in picked], dtype="int64")
    return Detections(cls, scores[idx, cls], boxes[idx])
