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
        iou = inter / (own + area - inter)  # 0/0 (two empty boxes) is NaN, as in Paddle
    return np.where(disjoint, zero, iou).astype("float32")


def _candidates(scores: Any, s: NmsSettings) -> tuple[Any, Any, Any]:
    """(box index, class, score) of every candidate, each class cut to its ``nms_top_k``
    best (stable: ties by box index), then in processing order: score descending, class,
    box index - the order in which Paddle's results are ranked for ``keep_top_k``."""
    import numpy as np

    idx, cls = np.nonzero(scores > np.float32(s.score_threshold))
    sc = scores[idx, cls]
    order = np.lexsort((idx, -sc, cls))
    idx, cls, sc = idx[order], cls[order], sc[order]
    if s.nms_top_k > -1:
        rank = np.arange(len(cls)) - np.searchsorted(cls, cls, side="left")
        top = rank < s.nms_top_k
        idx, cls, sc = idx[top], cls[top], sc[top]
    order = np.lexsort((idx, cls, -sc))
    return idx[order], cls[order], sc[order]


def multiclass_nms(boxes: Any, scores: Any, settings: NmsSettings) -> Detections:
    """NMS over ``boxes`` [N, 4] with per-class ``scores`` [N, C] (see the module docstring).

    Candidates of every class are visited once, best first; a kept box removes the later
    candidates of its class that overlap it too much, so the loop runs once per kept box and
    stops at ``keep_top_k`` (the later ones could not make the cut).
    """
    import numpy as np

    boxes = np.asarray(boxes, dtype="float32")
    scores = np.asarray(scores, dtype="float32")
    idx, cls, sc = _candidates(scores, settings)
    alive = np.ones(len(idx), dtype=bool)
    grouped = np.argsort(cls, kind="stable")  # positions of each class, in visiting order
    starts = np.searchsorted(cls[grouped], np.arange(scores.shape[1] + 1))
    thr = np.float32(settings.nms_threshold)
    kept: list[int] = []
    pos = 0
    while pos < len(idx) and len(kept) != settings.keep_top_k:
        pos += int(np.argmax(alive[pos:]))
        if not alive[pos]:
            break
        kept.append(pos)
        c = int(cls[pos])
        later = grouped[starts[c] : starts[c + 1]]
        later = later[np.searchsorted(later, pos, side="right") :]
        later = later[alive[later]]
        if later.size:
            iou = iou_one_to_many(boxes[idx[pos]], boxes[idx[later]])
            alive[later[~(iou <= thr)]] = False  # Paddle keeps only if overlap <= threshold
        pos += 1
    if not kept:
        return Detections.empty()
    k = np.array(kept)
    k = k[np.argsort(cls[k], kind="stable")]  # by class, best first within a class
    return Detections(cls[k].astype("int64"), sc[k], boxes[idx[k]])
