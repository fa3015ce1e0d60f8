"""picozoo's decoder + NMS on the no-post-processing ONNX reproduce Paddle Inference's
post-processed model, detection for detection, on natural images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.detections import assert_same_detections

from picozoo.detect.decode import decode, split_outputs
from picozoo.detect.detections import Detections
from picozoo.detect.nms import multiclass_nms
from picozoo.detect.preprocess import preprocess
from picozoo.paddle_dir import find_paddle_model
from picozoo.runtime import load

pytestmark = pytest.mark.slow


def _ours(
    engine: str, model: Path, cfg: Any, image: np.ndarray
) -> tuple[Detections, list[np.ndarray]]:
    """The no-post-processing model on ``engine``, then picozoo's decoder and NMS."""
    x, info = preprocess(image, cfg)
    outputs = load(engine, model, reference=True).run({"image": x[None]})
    scores, dists = split_outputs(outputs)
    boxes, class_scores = decode(scores, dists, cfg.input_size, info["scale_factor"])
    return multiclass_nms(boxes, class_scores, cfg.nms), outputs


def _paddle(model_dir: Path, cfg: Any, image: np.ndarray) -> Detections:
    x, info = preprocess(image, cfg)
    rows, num = load("paddle", model_dir, reference=True).run(
        {"image": x[None], "scale_factor": info["scale_factor"][None]}
    )
    assert int(num[0]) == len(Detections.from_rows(rows))
    return Detections.from_rows(rows)


@pytest.mark.parametrize(
    ("engine", "rtol"),
    # Paddle's own no-post-processing outputs: the decoder and NMS alone are compared. ONNX
    # Runtime's outputs differ from Paddle's by float32 noise (~1e-6 relative on distance
    # logits, amplified by x64 strides), so its boxes get a relative term of a few ulps.
    [("paddle", 0.0), ("onnxruntime", 5e-6)],
)
@pytest.mark.parametrize("variant", ["pp", "pp-fast"])
@pytest.mark.parametrize("image_name", ["astronaut", "coffee", "chelsea"])
def test_decoder_and_nms_reproduce_paddle_post_processing(
    picodet: dict[str, Any],
    natural_images: dict[str, np.ndarray],
    image_name: str,
    variant: str,
    engine: str,
    rtol: float,
) -> None:
    image = natural_images[image_name]
    cfg = find_paddle_model(picodet[variant]).config()
    assert cfg.nms is not None and cfg.input_size == picodet["size"]
    model = picodet["onnx"] if engine == "onnxruntime" else picodet["nopp"]
    ours, raw = _ours(engine, model, cfg, image)
    # the weights make outputs vary: scores spread over [0, 1], distance logits over units
    scores = np.concatenate([o[0].ravel() for o in raw[:4]])
    dists = np.concatenate([o[0].ravel() for o in raw[4:]])
    assert scores.min() < 0.05 and scores.max() > 0.95 and dists.std() > 2.0
    ref = _paddle(picodet[variant], cfg, image)
    assert len(ref) > 3
    assert len(ours) == len(ref)
    # Paddle's rows: by class, then by score; a tie within 1e-5 may come in either order
    assert_same_detections(ours, ref, score_atol=1e-5, box_rtol=rtol, box_atol=1e-3)
    _, info = preprocess(image, cfg)
    if image_name != "astronaut":  # non-square images give non-square scale factors
        assert info["scale_factor"][0] != info["scale_factor"][1]


def test_detector_end_to_end_matches_paddle(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray]
) -> None:
    """The Detector (decoding only cells above the score threshold) gives the same result."""
    from picozoo.detect.detector import Detector

    cfg = find_paddle_model(picodet["pp"]).config()
    assert cfg.nms is not None
    # reference kernels: with ONNX Runtime's fused kernels, float32 noise can flip a box whose
    # IoU sits right at the threshold, which is the engine, not the decoder
    det = Detector(load("onnxruntime", picodet["onnx"], reference=True), cfg, cfg.nms)
    assert not det.postprocessed
    pp = Detector(load("paddle", picodet["pp"], reference=True), cfg)
    assert pp.postprocessed
    for image in natural_images.values():
        ours, ms = det.detect(image)
        ref, _ = pp.detect(image)
        assert sorted(ms) == ["inference", "postprocess", "preprocess"]
        assert_same_detections(ours, ref, score_atol=1e-5, box_rtol=5e-6, box_atol=1e-3)


def test_conversion_records_detection_agreement(picodet: dict[str, Any]) -> None:
    import json

    prov = json.loads((Path(picodet["onnx"]).parent / "provenance.json").read_text())
    agreement = prov["detection_agreement"]
    # float32 noise between the engines can flip a box that sits right at the NMS threshold
    assert agreement["detections"] > 5 and agreement["agreement"] >= 0.98, agreement
    assert agreement["mean_iou"] > 0.999
