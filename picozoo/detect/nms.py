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

from collections.abc import Callable
from typing import Any

from ..paddle_dir import NmsSettings
from .detections import Detections

#: candidates examined by the first step of :func:`_greedy`; each next step doubles it, up
#: to ``MAX_CHUNK`` (the same-class pairs of a step are held in memory)
CHUNK, MAX_CHUNK = 128, 1024


def box_columns(boxes: Any) -> Any:
    """``[5, K]`` float32: the columns x1, y1, x2, y2 of ``boxes`` [K, 4] and each box's area
    as Paddle's ``BBoxArea`` (normalized) computes it (0 for an inverted box)."""
    import numpy as np

    x1, y1, x2, y2 = np.asarray(boxes, dtype="float32").T
    empty = (x2 < x1) | (y2 < y1)
    return np.stack([x1, y1, x2, y2, np.where(empty, np.float32(0), (x2 - x1) * (y2 - y1))])


def iou_indexed(columns: Any, i: Any, j: Any) -> Any:
    """IoU of boxes ``i[k]`` and ``j[k]`` of :func:`box_columns` ``columns``, in float32, as
    Paddle's ``JaccardOverlap`` (normalized); ``i`` is the box kept first.

    >>> import numpy as np
    >>> cols = box_columns(np.array([[0, 0, 2, 2], [1, 0, 3, 2]], "float32"))
    >>> iou_indexed(cols, np.array([0]), np.array([1]))
    array([0.33333334], dtype=float32)
    """
    import numpy as np

    x1, y1, x2, y2, area = columns
    ax1, ay1, ax2, ay2 = x1[i], y1[i], x2[i], y2[i]
    bx1, by1, bx2, by2 = x1[j], y1[j], x2[j], y2[j]
    inter = (np.minimum(ax2, bx2) - np.maximum(ax1, bx1)) * (
        np.minimum(ay2, by2) - np.maximum(ay1, by1)
    )
    disjoint = (bx1 > ax2) | (bx2 < ax1) | (by1 > ay2) | (by2 < ay1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area[i] + area[j] - inter)  # 0/0 (two empty boxes) is NaN, as in Paddle
    return np.where(disjoint, np.float32(0), iou).astype("float32")


def iou_one_to_many(box: Any, boxes: Any) -> Any:
    """IoU of one box ``[4]`` with many ``[K, 4]`` (see :func:`iou_indexed`)."""
    import numpy as np

    cols = box_columns(np.concatenate([np.asarray(box).reshape(1, 4), boxes]))
    return iou_indexed(cols, np.zeros(len(boxes), dtype=np.intp), np.arange(1, len(boxes) + 1))


class Candidates:
    """Paddle's candidates - scores above ``score_threshold``, each class cut to its
    ``nms_top_k`` best - in visiting order: score descending, then class, then box index.

    Sorted lazily, a prefix at a time: an image has thousands of candidates, and NMS rarely
    visits more than a few hundred before ``keep_top_k`` are kept. Each candidate gets one
    int64 key whose ascending order is the visiting order (the score's bits as an ordered
    integer, negated to sort descending, then ``class * boxes + box``), so a prefix is a
    partition plus a small sort, exact even for tied scores.

    >>> import numpy as np
    >>> c = Candidates(np.array([[0.5, 0.9], [0.9, 0.1]], "float32"), NmsSettings(0.2, 0.5, 9, 9))
    >>> idx, cls, score = c.first(3)  # a tie at 0.9: class 0 first
    >>> idx.tolist(), cls.tolist(), [round(float(s), 2) for s in score]
    ([1, 0, 0], [0, 1, 0], [0.9, 0.9, 0.5])
    """

    def __init__(self, scores: Any, settings: NmsSettings) -> None:
        import numpy as np

        self.scores = scores
        self.boxes, self.classes = scores.shape
        self.top_k = settings.nms_top_k
        flat = np.flatnonzero(scores > np.float32(settings.score_threshold))
        value = scores.ravel()[flat] + np.float32(0.0)  # -0.0 -> 0.0: equal scores, equal keys
        bits = value.view(np.int32).astype(np.int64)
        ordered = np.where(bits < 0, -(bits & 0x7FFFFFFF) - 1, bits)  # increases with value
        slot = flat % self.classes * self.boxes + flat // self.classes
        self.keys = (-ordered << 32) | slot  # |ordered| < 2**31 for any non-NaN float32
        # the sorted prefix so far (after the per-class cut), and the keys not sorted yet
        self._idx = self._cls = np.zeros(0, dtype=np.int64)
        self._rest = self.keys
        self._per_class = np.zeros(self.classes, dtype=np.int64)  # taken so far, for the cut

    def __len__(self) -> int:
        return len(self.keys)

    def first(self, count: int) -> tuple[Any, Any, Any]:
        """(box index, class, score) arrays of the first ``count`` candidates (all of them
        when there are fewer). Each call sorts only the keys no earlier call reached."""
        import numpy as np

        while len(self._idx) < count and len(self._rest):
            # at least what is missing; at least as many as taken so far when the cut drops
            # some, so a class over its top-k costs a few rounds, not one per key
            take = max(count - len(self._idx), len(self.keys) - len(self._rest))
            if take < len(self._rest):
                part = np.partition(self._rest, take - 1)
                new, self._rest = np.sort(part[:take]), part[take:]
            else:
                new, self._rest = np.sort(self._rest), self._rest[:0]
            slot = new & 0xFFFFFFFF
            cls, idx = slot // self.boxes, slot % self.boxes
            if self.top_k > -1:
                rank = self._per_class[cls] + _rank_in_class(cls)
                self._per_class += np.bincount(cls, minlength=self.classes)
                cls, idx = cls[rank < self.top_k], idx[rank < self.top_k]
            self._idx = np.concatenate([self._idx, idx])
            self._cls = np.concatenate([self._cls, cls])
        idx, cls = self._idx[:count], self._cls[:count]
        return idx, cls, self.scores[idx, cls]


def _rank_in_class(labels: Any) -> Any:
    """Each element's rank among the earlier elements of its class (0 for the first)."""
    import numpy as np

    g = np.argsort(labels, kind="stable")
    grouped = labels[g]
    rank = np.empty(len(labels), dtype=np.intp)
    rank[g] = np.arange(len(labels)) - np.searchsorted(grouped, grouped, side="left")
    return rank


def _greedy(
    candidates: Candidates, boxes_of: Callable[[Any], Any], threshold: Any, limit: int
) -> tuple[Any, Any, Any]:
    """(box index, class, score) of the candidates kept by greedy suppression in visiting
    order, at most ``limit`` of them, in that order; ``boxes_of(rows)`` gives boxes [K, 4].

    A candidate's fate depends only on the candidates kept before it, so the candidates are
    taken a chunk at a time (``CHUNK``, doubling up to ``MAX_CHUNK``), each chunk together
    with the ones kept so far. Within a step they are grouped by class (stable), so a
    candidate's later same-class rivals are the next ones of its group: the IoU of every such
    pair is one vectorised call, and the walk in visiting order clears a slice per kept box.
    It stops once ``limit`` are kept (later candidates could not make the ``keep_top_k``
    cut), so only the boxes of the candidates it reached are decoded."""
    import numpy as np

    kept = np.zeros(0, dtype=np.intp)
    idx, cls, sc = candidates.first(0)
    lo, chunk = 0, CHUNK
    while len(kept) < limit:
        idx, cls, sc = candidates.first(lo + chunk)
        if lo >= len(idx):
            break
        pos = np.concatenate([kept, np.arange(lo, len(idx))])
        columns = box_columns(boxes_of(idx[pos]))
        new = _walk(cls[pos], columns, threshold, len(kept), limit - len(kept))
        kept = np.concatenate([kept, pos[new]])
        lo, chunk = len(idx), min(2 * chunk, MAX_CHUNK)
    return idx[kept], cls[kept], sc[kept]


def _walk(labels: Any, columns: Any, threshold: Any, before: int, room: int) -> list[int]:
    """One step of :func:`_greedy`: the positions (``>= before``; the first ``before`` were
    kept by earlier steps) kept in visiting order, at most ``room`` of them."""
    import numpy as np

    n = len(labels)
    g = np.argsort(labels, kind="stable")  # grouped by class, visiting order within
    grouped = labels[g]
    rivals = np.searchsorted(grouped, grouped, side="right") - np.arange(n) - 1
    start = np.cumsum(rivals) - rivals  # where each grouped slot's pairs begin
    first = np.repeat(np.arange(n), rivals)
    second = first + 1 + np.arange(len(first)) - np.repeat(start, rivals)
    ok = np.ones(len(first), dtype=bool)  # two boxes kept by earlier steps overlap little
    fresh = g[second] >= before  # (the pair's later box is new to this step)
    ok[fresh] = iou_indexed(columns, g[first[fresh]], g[second[fresh]]) <= threshold  # NaN: no
    alive = np.ones(n, dtype=bool)
    slot = np.empty(n, dtype=np.intp)
    slot[g] = np.arange(n)
    slots, starts, counts = slot.tolist(), start.tolist(), rivals.tolist()
    new: list[int] = []
    for p in range(n):
        q = slots[p]
        if not alive[q]:
            continue
        if p >= before:
            new.append(p)
            if len(new) == room:
                break
        if counts[q]:
            alive[q + 1 : q + 1 + counts[q]] &= ok[starts[q] : starts[q] + counts[q]]
    return new


def multiclass_nms(boxes: Any, scores: Any, settings: NmsSettings) -> Detections:
    """NMS over per-class ``scores`` [N, C] (see the module docstring); ``boxes`` is [N, 4],
    or a function giving the boxes of the rows it is passed (decoded on demand: NMS asks for
    the few hundred it visits)."""
    import numpy as np

    scores = np.asarray(scores, dtype="float32")
    if callable(boxes):
        boxes_of = boxes
    else:
        table = np.asarray(boxes, dtype="float32")
        boxes_of = table.__getitem__
    limit = len(scores) * scores.shape[1] if settings.keep_top_k < 0 else settings.keep_top_k
    candidates = Candidates(scores, settings)
    idx, cls, sc = _greedy(candidates, boxes_of, np.float32(settings.nms_threshold), limit)
    if not len(idx):
        return Detections.empty()
    k = np.argsort(cls, kind="stable")  # by class, best first within a class
    return Detections(cls[k].astype("int64"), sc[k], np.asarray(boxes_of(idx[k]), "float32"))
