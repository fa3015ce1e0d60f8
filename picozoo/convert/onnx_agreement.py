"""Detection-level agreement of a Paddle model and its converted ONNX, on a few images.

The raw-tensor parity check proves the outputs match; this records what a user sees: the
detections of both (upstream pre-processing from ``infer_cfg.yml``, picozoo's decoder and
NMS, or the model's own NMS) on three seeded synthetic 480x640 images, matched by
:func:`picozoo.detect.agreement.agreement_on_images` (scores >= 0.3). Models that are not
detectors (outputs neither 8 PicoDet maps nor NMS rows) are skipped.

>>> synthetic_images()[0].shape
(480, 640, 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PicozooError
from ..paddle_dir import EVAL_NMS, PaddleModel

THRESHOLD = 0.3


def synthetic_images(count: int = 3, seed: int = 0) -> list[Any]:
    """Seeded RGB images: smooth colour gradients with noise and filled rectangles."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640].astype("float32")
    out = []
    for _ in range(count):
        base = np.stack([xx / 640, yy / 480, (xx + yy) / 1120], -1) * rng.uniform(80, 255, 3)
        image = base + rng.normal(0, 12, base.shape)
        for _ in range(6):
            x, y = rng.integers(0, 560), rng.integers(0, 400)
            image[y : y + rng.integers(20, 80), x : x + rng.integers(20, 80)] = rng.uniform(
                0, 255, 3
            )
        out.append(np.clip(image, 0, 255).astype("uint8"))
    return out


def looks_like_detector(output_dims: list[list[Any]]) -> bool:
    """8 outputs (PicoDet's score and distribution maps), or NMS rows ``[K, 6]`` first."""
    return len(output_dims) == 8 or (bool(output_dims) and output_dims[0][-1:] == [6])


def onnx_agreement(files: PaddleModel, onnx_path: Path) -> dict[str, Any]:
    """Agreement of Paddle Inference and ONNX Runtime detections (``{"skipped": why}`` when
    the model has no input size or is not a detector)."""
    from ..detect.agreement import agreement_on_images
    from ..detect.detector import Detector
    from ..runtime import load

    cfg = files.config()
    if cfg.input_size is None:
        return {"skipped": "no input size in infer_cfg.yml"}
    try:
        paddle = Detector(load("paddle", files.directory, reference=True), cfg, EVAL_NMS)
        onnx = Detector(load("onnxruntime", onnx_path, reference=True), cfg, EVAL_NMS)
        result = agreement_on_images(
            lambda im: paddle.detect(im)[0],
            lambda im: onnx.detect(im)[0],
            synthetic_images(),
            threshold=THRESHOLD,
        )
    except (PicozooError, ValueError, IndexError) as e:
        return {"skipped": f"cannot decode detections: {e}"}
    result["images"] = "3 seeded synthetic 480x640 images"
    return result
