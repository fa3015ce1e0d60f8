"""Decoder, NMS and pre-processing units, checked against independent references."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from picozoo.detect.decode import decode, distances, grid_centres, split_outputs
from picozoo.detect.detections import Detections
from picozoo.detect.nms import multiclass_nms
from picozoo.detect.preprocess import preprocess, resize_scale
from picozoo.errors import ModelFileError
from picozoo.paddle_dir import InferConfig, NmsSettings


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, s: NmsSettings) -> list[tuple]:
    """A slow, plain-Python reading of Paddle's multiclass_nms3 (float64 IoU)."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        iw = min(a[2], b[2]) - max(a[0], b[0])
        ih = min(a[3], b[3]) - max(a[1], b[1])
        if iw < 0 or ih < 0:
            return 0.0
        area = lambda r: max(r[2] - r[0], 0) * max(r[3] - r[1], 0)  # noqa: E731
        return iw * ih / (area(a) + area(b) - iw * ih)

    picked = []
    for c in range(scores.shape[1]):
        cand = sorted(
            (i for i in range(len(boxes)) if scores[i, c] > s.score_threshold),
            key=lambda i: -scores[i, c],
        )[: None if s.nms_top_k < 0 else s.nms_top_k]
        kept: list[int] = []
        for i in cand:
            if all(iou(boxes[i], boxes[k]) <= s.nms_threshold for k in kept):
                kept.append(i)
        picked += [(c, i) for i in kept]
    if -1 < s.keep_top_k < len(picked):
        best = sorted(range(len(picked)), key=lambda k: -scores[picked[k][1], picked[k][0]])
        picked = sorted((picked[k] for k in best[: s.keep_top_k]), key=lambda ci: ci[0])
    return picked


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_a_plain_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (300, 2))
    wh = rng.uniform(5, 40, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype("float32")
    scores = rng.uniform(0, 1, (300, 4)).astype("float32")
    s = NmsSettings(score_threshold=0.3, nms_threshold=0.5, nms_top_k=150, keep_top_k=60)
    got = multiclass_nms(boxes, scores, s)
    want = _reference_nms(boxes, scores, s)
    assert 10 < len(want) <= 60
    assert list(zip(got.labels.tolist(), got.scores.tolist(), strict=True)) == [
        (c, float(scores[i, c])) for c, i in want
    ]
    assert np.array_equal(got.boxes, boxes[[i for _, i in want]])


def _boxes_and_scores(rng: np.random.Generator, n: int, classes: int) -> tuple:
    xy = rng.uniform(0, 400, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype("float32")
    scores = rng.uniform(0, 1, (n, classes)).round(2).astype("float32")  # many exact ties
    return boxes, scores


def _lazy(boxes: np.ndarray) -> tuple[Any, list[int]]:
    """The lazy form of ``boxes`` (a function of the rows NMS asks for), and the sizes asked."""
    asked: list[int] = []

    def boxes_of(rows: np.ndarray) -> np.ndarray:
        asked.append(len(rows))
        return boxes[rows]

    return boxes_of, asked


@pytest.mark.slow
@pytest.mark.parametrize(
    ("nms_top_k", "keep_top_k"),
    # more candidates than nms.MAX_CHUNK: NMS visits them chunk after chunk, the lazily
    # sorted candidate list grows, and the per-class cut falls inside a chunk
    [(-1, -1), (700, -1), (-1, 1500), (300, 250)],
)
def test_nms_over_many_candidates_matches_the_reference(nms_top_k: int, keep_top_k: int) -> None:
    boxes, scores = _boxes_and_scores(np.random.default_rng(7), 1500, 3)
    # (0.055: no score sits on the threshold, which Paddle compares in float32)
    s = NmsSettings(score_threshold=0.055, nms_threshold=0.5, nms_top_k=nms_top_k,
                    keep_top_k=keep_top_k)  # fmt: skip
    boxes_of, asked = _lazy(boxes)
    got = multiclass_nms(boxes_of, scores, s)
    want = _reference_nms(boxes, scores, s)
    assert len(want) >= 250 and len(asked) > 2  # two chunks at least, then the output
    assert [(c, float(sc)) for c, sc in zip(got.labels.tolist(), got.scores, strict=True)] == [
        (c, float(scores[i, c])) for c, i in want
    ]
    assert np.array_equal(got.boxes, boxes[[i for _, i in want]])


@pytest.mark.parametrize("seed", range(3))
def test_nms_orders_negative_and_positive_scores_like_the_reference(seed: int) -> None:
    """Scores below zero (a negative threshold) sort by value too (their float bits do not)."""
    rng = np.random.default_rng(seed)
    boxes, _ = _boxes_and_scores(rng, 200, 2)
    scores = rng.uniform(-1, 1, (200, 2)).round(2).astype("float32")
    s = NmsSettings(score_threshold=-0.555, nms_threshold=0.5, nms_top_k=-1, keep_top_k=-1)
    got = multiclass_nms(boxes, scores, s)
    want = _reference_nms(boxes, scores, s)
    assert min(float(scores[i, c]) for c, i in want) < -0.4 and len(want) > 100
    assert list(zip(got.labels.tolist(), got.scores.tolist(), strict=True)) == [
        (c, float(scores[i, c])) for c, i in want
    ]


def test_nms_stops_decoding_once_keep_top_k_are_kept() -> None:
    boxes, scores = _boxes_and_scores(np.random.default_rng(3), 3000, 4)
    boxes_of, asked = _lazy(boxes)
    s = NmsSettings(score_threshold=0.025, nms_threshold=0.6, nms_top_k=1000, keep_top_k=20)
    got = multiclass_nms(boxes_of, scores, s)
    full = multiclass_nms(boxes, scores, s)
    assert len(got) == 20 and np.array_equal(got.boxes, full.boxes)
    assert np.array_equal(got.labels, full.labels) and np.array_equal(got.scores, full.scores)
    assert sum(asked) < 1000  # of ~11,000 candidates, only the first ones were decoded


def test_candidates_order_ties_by_class_then_box_and_cut_each_class() -> None:
    from picozoo.detect.nms import Candidates

    scores = np.array([[0.5, 0.5], [0.5, -0.0], [0.7, 0.5], [0.0, 0.5]], "float32")
    idx, cls, _ = Candidates(scores, NmsSettings(-0.5, 0.5, 2, 10)).first(10)
    # score descending; ties by class, then box; each class keeps its 2 best; -0.0 == 0.0
    assert list(zip(idx.tolist(), cls.tolist(), strict=True)) == [
        (2, 0), (0, 0), (0, 1), (2, 1)
    ]  # fmt: skip
    idx, cls, _ = Candidates(scores, NmsSettings(-0.5, 0.5, -1, 10)).first(10)
    assert list(zip(idx.tolist(), cls.tolist(), strict=True)) == [
        (2, 0), (0, 0), (1, 0), (0, 1), (2, 1), (3, 1), (3, 0), (1, 1)
    ]  # fmt: skip


def test_decoding_chosen_rows_equals_decoding_all() -> None:
    from picozoo.detect.decode import HeadOutputs

    rng = np.random.default_rng(0)
    cells = [100, 25, 9, 4]  # an 80x80 input: ceil(80 / s) squared for s = 8, 16, 32, 64
    s = [rng.uniform(0, 1, (1, n, 3)).astype("float32") for n in cells]
    d = [rng.normal(0, 4, (1, n, 32)).astype("float32") for n in cells]
    head = HeadOutputs.of(s, d, (80, 80), np.array([0.5, 2.0], "float32"))
    rows = np.array([137, 0, 99, 100, 125, 134])  # unsorted, across all four strides
    assert np.array_equal(head.boxes(rows), head.boxes()[rows])
    assert np.ptp(head.boxes()[:, 2] - head.boxes()[:, 0]) > 10  # distances vary


def test_decode_grid_is_ceil_of_size_over_stride() -> None:
    assert grid_centres((200, 100), 64).shape == (math.ceil(200 / 64) * math.ceil(100 / 64), 2)
    assert grid_centres((16, 16), 8).tolist() == [[4, 4], [12, 4], [4, 12], [12, 12]]


def test_distances_are_the_softmax_expectation() -> None:
    logits = np.zeros((1, 32), "float32")
    logits[0, 3] = 50.0  # side 0 all on bin 3
    d = distances(logits)
    assert d[0, 0] == pytest.approx(3.0, abs=1e-5)
    assert d[0, 1:].tolist() == pytest.approx([3.5, 3.5, 3.5])  # uniform over 8 bins


def test_decode_divides_by_scale_factor_x_then_y() -> None:
    s = [np.full((1, n, 1), 0.9, "float32") for n in (1, 1, 1, 1)]
    d = [np.zeros((1, 1, 32), "float32") for _ in range(4)]
    boxes, _ = decode(s, d, (8, 8), np.array([2.0, 0.5], "float32"))  # [scale_y, scale_x]
    cx, cy, dist = 4.0, 4.0, 3.5 * 8
    assert boxes[0].tolist() == pytest.approx(
        [(cx - dist) / 0.5, (cy - dist) / 2.0, (cx + dist) / 0.5, (cy + dist) / 2.0]
    )


def test_split_outputs_refuses_other_models() -> None:
    with pytest.raises(ModelFileError, match="8 outputs"):
        split_outputs([np.zeros((1, 4, 2))] * 2)


def test_rows_with_label_minus_one_mean_no_detection() -> None:
    assert len(Detections.from_rows(np.array([[-1.0]]))) == 0
    assert len(Detections.from_rows(np.zeros((0, 6)))) == 0
    d = Detections.from_rows(np.array([[1, 0.5, 1, 2, 3, 4]]))
    assert d.labels.tolist() == [1] and d.boxes.tolist() == [[1, 2, 3, 4]]


def test_preprocess_keep_ratio_and_normalisation() -> None:
    cfg = InferConfig(input_size=(320, 320), keep_ratio=True, interp=1)
    assert resize_scale((300, 600), cfg) == (320 / 600, 320 / 600)
    image = np.full((300, 600, 3), 255, "uint8")
    x, info = preprocess(image, cfg)
    assert x.shape == (3, 160, 320) and x.dtype == np.float32
    assert info["im_shape"].tolist() == [160, 320]
    expect = (1.0 - np.array(cfg.mean)) / np.array(cfg.std)
    assert x[:, 0, 0] == pytest.approx(expect.astype("float32"), abs=1e-6)


def test_table_normalisation_is_bit_identical_to_upstream_operations() -> None:
    from picozoo.detect.preprocess import normalise

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cfg = InferConfig(input_size=(37, 53))  # no resizing: scale 1
    x, _ = preprocess(image, cfg)
    expect = normalise(image, cfg).transpose(2, 0, 1)
    assert np.array_equal(x, expect) and x.dtype == np.float32


def test_detectors_do_not_let_onnxruntime_busy_wait(tmp_path: Path) -> None:
    """infer/eval read, pre-process and NMS while the engine runs: its idle threads must sleep,
    not spin on the cores that work needs; the bench keeps ONNX Runtime's default."""
    from support.tiny_detector import build_tiny_detector

    from picozoo.detect.detector import Detector
    from picozoo.runtime import load

    model = build_tiny_detector(tmp_path / "tiny.onnx")
    det = Detector.open(model, config=InferConfig(input_size=(64, 64)), threads=2)
    assert det.runtime.settings["allow_spinning"] is False
    assert load("onnxruntime", model, threads=2).settings["allow_spinning"] is True
    image = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    detections, _ = det.detect(image)
    assert len(detections) > 0
