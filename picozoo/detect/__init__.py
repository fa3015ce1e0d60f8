"""Detections: turn a PicoDet model's outputs into boxes, as PaddleDetection deploys it.

The public API is two calls (what ``picozoo infer`` and ``picozoo eval`` do):
:func:`infer` (images in, boxes out) and :func:`evaluate` (COCO mAP of a model on a data set);
:class:`~.detector.Detector` runs a model on images one by one.

- :mod:`.images`: the files they read (regular files only, folders as their images, the pixel
  cap read from image headers) and the output names (never an input's);
- :mod:`.coco`: COCO annotation files, validated, and COCO scoring;
- :mod:`.preprocess`: ``infer_cfg.yml`` pre-processing (OpenCV resize, normalise, permute),
  exactly as ``deploy/python/preprocess.py``;
- :mod:`.decode`: the no-post-processing outputs (4 score maps + 4 distance distributions) to
  boxes and class scores;
- :mod:`.nms`: multi-class NMS with the semantics of Paddle's ``multiclass_nms3`` kernel;
- :mod:`.detections`: the result type; :mod:`.detector`: a model on the runtime layer, images
  in, detections out, with per-stage timings;
- :mod:`.api`: :func:`infer` and :func:`evaluate` (over :mod:`.infer` and :mod:`.evaluate`).

Heavy imports (numpy, cv2) happen inside functions.
"""

from __future__ import annotations

# The modules ``infer`` and ``evaluate`` are loaded first, so that the package's names
# ``infer`` and ``evaluate`` stay the functions below (importing a submodule later would
# rebind them to the module).
from . import evaluate as _evaluate_module  # noqa: F401
from . import infer as _infer_module  # noqa: F401
from .api import evaluate, infer
from .detector import Detector

__all__ = ["Detector", "evaluate", "infer"]
