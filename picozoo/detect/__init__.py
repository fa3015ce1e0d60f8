"""Detections: turn a PicoDet model's outputs into boxes, as PaddleDetection deploys it.

- :mod:`.preprocess`: ``infer_cfg.yml`` pre-processing (OpenCV resize, normalise, permute),
  exactly as ``deploy/python/preprocess.py``;
- :mod:`.decode`: the no-post-processing outputs (4 score maps + 4 distance distributions) to
  boxes and class scores;
- :mod:`.nms`: multi-class NMS with the semantics of Paddle's ``multiclass_nms3`` kernel;
- :mod:`.detections`: the result type; :mod:`.detector`: a model on the runtime layer, images
  in, detections out, with per-stage timings.

Heavy imports (numpy, cv2) happen inside functions.
"""
