"""Decode PicoDet's no-post-processing outputs into boxes and class scores.

The exported head gives, per stride (8, 16, 32, 64), a score map ``[1, N, C]`` (already
sigmoid-activated) and a box distribution ``[1, N, 4 * (reg_max + 1)]`` (logits). For a
``H x W`` input the stride-``s`` grid is ``ceil(H / s) x ceil(W / s)`` with cell centres at
``((j + 0.5) * s, (i + 0.5) * s)``; each side's distance is the expectation of the softmax
over its ``reg_max + 1`` bins, times ``s``; the box is ``centre -/+ distance``, divided by
``scale_factor`` to land in original-image pixels. Computed in float32 like the exported
model.

>>> import numpy as np
>>> s = [np.full((1, n, 2), 0.5, "float32") for n in (4, 1, 1, 1)]
>>> d = [np.zeros((1, n, 32), "float32") for n in (4, 1, 1, 1)]
>>> boxes, scores = decode(s, d, (16, 16), np.array([1.0, 1.0], "float32"))
>>> boxes.shape, scores.shape, boxes[0].tolist()
((7, 4), (7, 2), [-24.0, -24.0, 32.0, 32.0])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelFileError

STRIDES = (8, 16, 32, 64)


def split_outputs(outputs: Sequence[Any], num_classes: int | None = None) -> tuple[list, list]:
    """Split the 8 no-post-processing outputs into (score maps, distribution maps), largest
    grid first. Upstream's order is the 4 score maps then the 4 distribution maps."""
    if len(outputs) != 2 * len(STRIDES):
        raise ModelFileError(
            f"a no-post-processing PicoDet has {2 * len(STRIDES)} outputs, this model has "
            f"{len(outputs)}",
            hint="use a model exported without post-processing, or one with NMS as it is",
        )
    scores, dists = list(outputs[: len(STRIDES)]), list(outputs[len(STRIDES) :])
    for s, d in zip(scores, dists, strict=True):
        if s.ndim != 3 or d.ndim != 3 or s.shape[1] != d.shape[1] or d.shape[2] % 4:
            raise ModelFileError(
                f"unexpected output shapes {list(s.shape)} / {list(d.shape)}",
                hint="expected [1, N, classes] score maps and [1, N, 4*(reg_max+1)] maps",
            )
    return scores, dists


@functools.lru_cache(maxsize=32)
def grid_centres(input_hw: tuple[int, int], stride: int) -> Any:
    """``[N, 2]`` float32 (x, y) centres of the stride's grid, row-major (cached, read-only)."""
    import numpy as np

    gh, gw = math.ceil(input_hw[0] / stride), math.ceil(input_hw[1] / stride)
    ys, xs = np.meshgrid(np.arange(gh, dtype="float32"), np.arange(gw, dtype="float32"),
                         indexing="ij")  # fmt: skip
    out = (np.stack([xs.ravel(), ys.ravel()], axis=1) + np.float32(0.5)) * np.float32(stride)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=32)
def _all_cells(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[Any, Any]:
    """Every stride's cell centres ``[N, 2]`` and strides ``[N, 1]``, concatenated (cached,
    read-only)."""
    import numpy as np

    grids = [grid_centres(input_hw, s) for s in strides]
    centres = np.concatenate(grids)
    cell_strides = np.concatenate(
        [np.full((len(g), 1), s, dtype="float32") for g, s in zip(grids, strides, strict=True)]
    )
    centres.flags.writeable = cell_strides.flags.writeable = False
    return centres, cell_strides


def distances(dist_logits: Any) -> Any:
    """``[N, 4 * bins]`` logits -> ``[N, 4]`` expected distances in grid units (float32):
    softmax over each side's bins, then the product with ``0..bins-1`` (upstream's
    ``F.softmax`` + ``F.linear``). Bin maxima are taken column by column and the expectation
    is a matrix product: numpy reduces a short last axis several times slower."""
    import numpy as np

    n, width = dist_logits.shape
    bins = width // 4
    x = np.asarray(dist_logits, dtype="float32").reshape(n * 4, bins)
    top = x[:, 0].copy()
    for k in range(1, bins):
        np.maximum(top, x[:, k], out=top)
    e = np.exp(x - top[:, None])
    p = e / e.sum(axis=1, keepdims=True)
    return (p @ np.arange(bins, dtype="float32")).reshape(n, 4)


@dataclass(frozen=True)
class HeadOutputs:
    """One image's no-post-processing outputs, every stride concatenated (stride 8 first):
    class ``scores`` [N, C], distance ``logits`` [N, 4 * bins], cell ``centres`` [N, 2] and
    ``strides`` [N, 1]; ``scale`` divides boxes into original-image pixels. Boxes are decoded
    on demand (:meth:`boxes`): NMS needs the few hundred rows it visits, not all of them.

    >>> import numpy as np
    >>> s = [np.full((1, n, 2), 0.5, "float32") for n in (4, 1, 1, 1)]
    >>> d = [np.zeros((1, n, 32), "float32") for n in (4, 1, 1, 1)]
    >>> head = HeadOutputs.of(s, d, (16, 16), np.array([1.0, 2.0], "float32"))
    >>> head.boxes(np.array([0])).tolist()
    [[-12.0, -24.0, 16.0, 32.0]]
    """

    scores: Any
    logits: Any
    centres: Any
    strides: Any
    scale: Any

    @classmethod
    def of(
        cls,
        score_maps: Sequence[Any],
        dist_maps: Sequence[Any],
        input_hw: tuple[int, int],
        scale_factor: Any,
        strides: Sequence[int] = STRIDES,
    ) -> HeadOutputs:
        """The first image of a batch of outputs (see :func:`split_outputs`)."""
        import numpy as np

        for stride, s in zip(strides, score_maps, strict=True):
            cells = grid_centres(tuple(input_hw), stride).shape[0]
            if cells != s.shape[1]:
                raise ModelFileError(
                    f"stride {stride}: the model gives {s.shape[1]} cells, a {input_hw[0]}x"
                    f"{input_hw[1]} input has {cells}",
                    hint="the input size does not match the model (check infer_cfg.yml)",
                )
        centres, cell_strides = _all_cells(tuple(input_hw), tuple(strides))
        sy, sx = (float(v) for v in np.asarray(scale_factor).reshape(-1)[:2])
        return cls(
            scores=np.concatenate([np.asarray(s[0], dtype="float32") for s in score_maps]),
            logits=np.concatenate([d[0] for d in dist_maps]),
            centres=centres,
            strides=cell_strides,
            scale=np.array([sx, sy, sx, sy], dtype="float32"),
        )

    def boxes(self, rows: Any = None) -> Any:
        """``[len(rows), 4]`` float32 boxes (x1, y1, x2, y2, original-image pixels) of the
        given cells (all of them by default)."""
        import numpy as np

        if rows is None:
            rows = slice(None)
        dist = distances(self.logits[rows]) * self.strides[rows]
        centre = self.centres[rows]
        boxes = np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], axis=1)
        return boxes.astype("float32") / self.scale


def decode(
    score_maps: Sequence[Any],
    dist_maps: Sequence[Any],
    input_hw: tuple[int, int],
    scale_factor: Any,
    strides: Sequence[int] = STRIDES,
) -> tuple[Any, Any]:
    """Boxes ``[N, 4]`` (x1, y1, x2, y2 in original-image pixels) and scores ``[N, C]`` of the
    first image of a batch, every stride concatenated (stride 8 first)."""
    head = HeadOutputs.of(score_maps, dist_maps, input_hw, scale_factor, strides)
    return head.boxes(), head.scores
