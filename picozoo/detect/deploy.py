"""Which NMS decodes a no-post-processing PicoDet: upstream's evaluation settings (the default)
or upstream's deploy behaviour (``--nms deploy``).

* ``eval``: Paddle's ``multiclass_nms3`` with the settings PaddleDetection evaluates with
  (``configs/picodet/_base_/picodet_v2.yml``: score > 0.025, IoU 0.6, top-k 1000, keep 100);
  the same detections as the graph exported with post-processing (:mod:`.nms`). ``infer``
  then keeps the detections scoring at least ``--threshold``.
* ``deploy``: what PaddleDetection's ``deploy/python/infer.py`` does with a PicoDet exported
  without post-processing (its ``PicoDetPostProcess``): per stride, the 1000 cells with the
  highest class score; per class, the candidates scoring strictly above 0.4 (the class's
  default: ``infer_cfg.yml``'s score threshold is not read), the best 200 of them, greedy
  suppression at ``infer_cfg.yml``'s ``NMS.nms_threshold`` (IoU with a 1e-5 epsilon; a box is
  kept at IoU <= the threshold), at most 100 kept per class; boxes decoded in float64, clipped
  to the resized image, then divided by the scale factor. ``infer`` then keeps the detections
  scoring strictly above ``--threshold`` (upstream's ``visualize``).

``--conf`` and ``--iou`` replace the score and IoU thresholds of either.

>>> nms_settings("deploy", None).score_threshold, nms_settings("eval", None, iou=0.5)
(0.4, NmsSettings(score_threshold=0.025, nms_threshold=0.5, nms_top_k=1000, keep_top_k=100))
>>> describe_nms("eval", EVAL_NMS)
'NMS: eval (upstream evaluation settings: score > 0.025, IoU 0.6, top-k 1000, keep 100)'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import UsageError
from ..paddle_dir import EVAL_NMS, InferConfig, NmsSettings
from .decode import HeadOutputs
from .detections import Detections

NMS_MODES = ("eval", "deploy")
#: ``PicoDetPostProcess``'s defaults (deploy/python/picodet_postprocess.py); only the IoU is
#: read from ``infer_cfg.yml`` (``NMS.nms_threshold``), where it has one.
DEPLOY_NMS = NmsSettings(score_threshold=0.4, nms_threshold=0.5, nms_top_k=1000, keep_top_k=100)
#: ``hard_nms``'s ``candidate_size``: the best candidates per class it looks at
DEPLOY_CANDIDATES = 200
_EPS = 1e-5


def nms_settings(
    mode: str, cfg: InferConfig | None, *, iou: float | None = None, conf: float | None = None
) -> NmsSettings:
    """The NMS settings ``mode`` decodes with (see the module docstring), ``iou`` and ``conf``
    replacing its IoU and score thresholds."""
    if mode not in NMS_MODES:
        raise UsageError(f"unknown NMS mode {mode!r}", hint="use --nms eval or --nms deploy")
    base = EVAL_NMS
    if mode == "deploy":
        base = DEPLOY_NMS
        if cfg is not None and cfg.nms is not None:
            base = dataclasses.replace(base, nms_threshold=cfg.nms.nms_threshold)
    if iou is not None:
        base = dataclasses.replace(base, nms_threshold=float(iou))
    if conf is not None:
        base = dataclasses.replace(base, score_threshold=float(conf))
    return base


def describe_nms(mode: str, settings: NmsSettings, *, postprocessed: bool = False) -> str:
    """The one line that says which NMS ran."""
    if postprocessed:
        return "NMS: the model's own (exported with post-processing; --nms does not apply)"
    s = settings
    if mode == "deploy":
        return (f"NMS: deploy (upstream deploy/python/infer.py: score > {s.score_threshold:g}, "
                f"IoU {s.nms_threshold:g}, top-k {s.nms_top_k} per stride, "
                f"{DEPLOY_CANDIDATES} candidates and keep {s.keep_top_k} per class, boxes "
                "clipped to the image)")  # fmt: skip
    return (f"NMS: eval (upstream evaluation settings: score > {s.score_threshold:g}, IoU "
            f"{s.nms_threshold:g}, top-k {s.nms_top_k}, keep {s.keep_top_k})")  # fmt: skip


def nms_record(mode: str, settings: NmsSettings) -> dict[str, Any]:
    """The NMS as results record it (the eval cache key's ``nms``): the settings, and
    ``mode: deploy`` for the deploy behaviour (the evaluation settings keep the record of
    earlier versions, so their cached results stay valid).

    >>> nms_record("deploy", DEPLOY_NMS)["mode"], "mode" in nms_record("eval", EVAL_NMS)
    ('deploy', False)
    """
    out: dict[str, Any] = dataclasses.asdict(settings)
    if mode == "deploy":
        out.update(mode="deploy", candidates=DEPLOY_CANDIDATES, clip=True)
    return out


def deploy_postprocess(head: HeadOutputs, im_shape: Any, settings: NmsSettings) -> Detections:
    """Upstream's deploy decoding of one image's head outputs (see the module docstring):
    detections ordered by class, then by score (best first); ``im_shape`` is the resized
    image's ``(h, w)``, the boxes are in original-image pixels."""
    import numpy as np

    strides = head.strides[:, 0]
    boxes_parts, score_parts = [], []
    for stride in dict.fromkeys(strides.tolist()):
        rows = np.flatnonzero(strides == stride)
        scores = head.scores[rows]
        top = np.argsort(scores.max(axis=1))[::-1][: settings.nms_top_k]
        rows = rows[top]
        bins = head.logits.shape[1] // 4
        logits = np.asarray(head.logits[rows], dtype="float32").reshape(-1, bins)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        dist = (p * np.arange(bins)).sum(axis=1).reshape(-1, 4) * float(stride)
        centre = np.asarray(head.centres[rows], dtype="float64")
        boxes_parts.append(np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], axis=1))
        score_parts.append(scores[top])
    boxes = np.concatenate(boxes_parts) if boxes_parts else np.zeros((0, 4))
    scores = np.concatenate(score_parts) if score_parts else np.zeros((0, 0), "float32")
    labels, kept_scores, kept_boxes = [], [], []
    for c in range(scores.shape[1]):
        probs = scores[:, c]
        mask = probs > settings.score_threshold
        if not mask.any():
            continue
        keep = _hard_nms(boxes[mask], probs[mask], settings.nms_threshold, settings.keep_top_k)
        labels += [c] * len(keep)
        kept_scores.append(probs[mask][keep])
        kept_boxes.append(boxes[mask][keep])
    if not labels:
        return Detections.empty()
    out = np.concatenate(kept_boxes)
    h, w = (float(v) for v in np.asarray(im_shape).reshape(-1)[:2])
    out = np.stack([np.minimum(out[:, 0], out[:, 2]), np.minimum(out[:, 1], out[:, 3]),
                    np.maximum(out[:, 0], out[:, 2]), np.maximum(out[:, 1], out[:, 3])],
                   axis=1)  # fmt: skip
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    out = out.astype("float32").astype("float64") / head.scale.astype("float64")
    return Detections(
        np.asarray(labels, dtype="int64"),
        np.concatenate(kept_scores).astype("float32"),
        out.astype("float32"),
    )


def _hard_nms(boxes: Any, scores: Any, threshold: float, top_k: int) -> list[int]:
    """Greedy suppression over the best :data:`DEPLOY_CANDIDATES` (by score): the indices
    kept, best first, at most ``top_k`` (``<= 0``: all)."""
    import numpy as np

    order = np.argsort(scores)[-DEPLOY_CANDIDATES:]
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    picked: list[int] = []
    while len(order):
        best = int(order[-1])
        picked.append(best)
        if 0 < top_k == len(picked) or len(order) == 1:
            break
        rest = order[:-1]
        lt = np.maximum(boxes[rest, :2], boxes[best, :2])
        rb = np.minimum(boxes[rest, 2:], boxes[best, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / (area[rest] + area[best] - inter + _EPS)
        order = rest[iou <= threshold]
    return picked
