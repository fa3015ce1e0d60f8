"""Detections of one image: class ids, scores and ``[x1, y1, x2, y2]`` boxes in image pixels.

>>> import numpy as np
>>> box = np.array([[1, 2, 11, 22]], "float32")
>>> d = Detections(np.array([2]), np.array([0.9], "float32"), box)
>>> d.to_coco("img.jpg", ["a", "b", "c"])  # doctest: +NORMALIZE_WHITESPACE
[{'image': 'img.jpg', 'category': 'c', 'category_id': 2, 'bbox': [1.0, 2.0, 10.0, 20.0],
  'score': 0.9}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Detections:
    """Parallel arrays: ``labels`` [K] int, ``scores`` [K] float32, ``boxes`` [K, 4] float32."""

    labels: Any
    scores: Any
    boxes: Any

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls) -> Detections:
        import numpy as np

        return cls(np.zeros(0, "int64"), np.zeros(0, "float32"), np.zeros((0, 4), "float32"))

    @classmethod
    def from_rows(cls, rows: Any) -> Detections:
        """From NMS output rows ``[label, score, x1, y1, x2, y2]`` (Paddle's multiclass_nms3;
        a single ``[-1]`` row, or any row with label -1, means none)."""
        import numpy as np

        rows = np.asarray(rows, dtype="float32")
        if rows.ndim != 2 or rows.shape[1] < 6:
            return cls.empty()
        rows = rows[rows[:, 0] >= 0]
        return cls(rows[:, 0].astype("int64"), rows[:, 1].copy(), rows[:, 2:6].copy())

    def all_finite(self) -> bool:
        """True when every box and score is a finite number (a broken model or config can give
        NaN or infinity, which cannot be drawn or scored)."""
        import numpy as np

        return bool(np.isfinite(self.boxes).all() and np.isfinite(self.scores).all())

    def finite(self) -> Detections:
        """Only the detections whose box and score are finite numbers."""
        import numpy as np

        keep = np.isfinite(self.boxes).all(axis=1) & np.isfinite(self.scores)
        return Detections(self.labels[keep], self.scores[keep], self.boxes[keep])

    def above(self, threshold: float, *, strict: bool = False) -> Detections:
        """Only the detections scoring at least ``threshold`` (``strict``: above it, as
        upstream's deploy code draws them).

        >>> import numpy as np
        >>> d = Detections(np.array([0, 1]), np.array([0.5, 0.7], "float32"), np.zeros((2, 4)))
        >>> len(d.above(0.5)), len(d.above(0.5, strict=True))
        (2, 1)
        """
        keep = self.scores > threshold if strict else self.scores >= threshold
        return Detections(self.labels[keep], self.scores[keep], self.boxes[keep])

    def to_coco(
        self, image: str, labels: Sequence[str] = (), category_ids: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        """COCO-results-style rows: ``bbox`` is ``[x, y, w, h]``; ``category`` is the class
        name when ``labels`` are known; ``category_id`` is the data set's id of the class
        (``category_ids[class]``: COCO's ids for COCO's 80 classes), else the class index."""
        out = []
        for label, score, (x1, y1, x2, y2) in zip(
            self.labels.tolist(), self.scores.tolist(), self.boxes.tolist(), strict=True
        ):
            name = labels[label] if 0 <= label < len(labels) else str(label)
            out.append(
                {
                    "image": image,
                    "category": name,
                    "category_id": int(category_ids[label])
                    if category_ids is not None and 0 <= label < len(category_ids)
                    else int(label),
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(score), 6),
                }
            )
        return out
