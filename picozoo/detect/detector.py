"""A detector: a PicoDet model on the runtime layer, RGB images in, detections out.

Models exported without post-processing (8 outputs) are decoded and NMS'd by picozoo
(:mod:`.decode`, :mod:`.nms`); models exported with it (inputs ``image`` + ``scale_factor``,
outputs ``[K, 6]`` rows + count) are run as they are. Every call times pre-processing,
inference and post-processing separately, as upstream's ``deploy/python/infer.py`` reports.

>>> det = Detector.open(Path("model.onnx"), config=cfg, engine="onnxruntime")  # doctest: +SKIP
>>> detections, ms = det.detect(read_image(Path("dog.jpg")))  # doctest: +SKIP
>>> sorted(ms)  # doctest: +SKIP
['inference', 'postprocess', 'preprocess']
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from ..paddle_dir import EVAL_NMS, InferConfig, NmsSettings
from ..runtime import Runtime, load
from ..runtime.base import refuse_unavailable_precision
from .decode import HeadOutputs, split_outputs
from .deploy import deploy_postprocess
from .detections import Detections
from .nms import multiclass_nms
from .preprocess import preprocess


@dataclass
class Detector:
    """``runtime`` + the ``config`` of its ``infer_cfg.yml`` + the NMS settings to decode with
    and how (``nms_mode``: ``eval``, Paddle's ``multiclass_nms3``; ``deploy``, upstream's
    ``deploy/python/infer.py`` decoding: see :mod:`.deploy`)."""

    runtime: Runtime
    config: InferConfig
    nms: NmsSettings = EVAL_NMS
    nms_mode: str = "eval"

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        config: InferConfig,
        engine: str = "onnxruntime",
        threads: int = 1,
        nms: NmsSettings = EVAL_NMS,
        precision: str = "fp32",
        nms_mode: str = "eval",
    ) -> Detector:
        if config.input_size is None:
            raise ModelFileError(
                f"{path}: no input size in its infer_cfg.yml",
                hint="give the model's infer_cfg.yml with --config",
            )
        # pipelined: reading, pre-processing and NMS share the CPU with the engine
        runtime = load(engine, path, threads=threads, precision=precision, pipelined=True)
        # what the engine computes in, read back: a precision this CPU cannot run is refused
        # (as bench skips its cell), so no result is labelled with a precision that did not run
        refuse_unavailable_precision(runtime)
        config.check_model(runtime.inputs(), runtime.outputs(), path)  # before anything runs
        return cls(runtime, config, nms, nms_mode)

    @functools.cached_property
    def input_names(self) -> frozenset[str]:
        """The model's input names (asked of the engine once, not per image)."""
        return frozenset(i.name for i in self.runtime.inputs())

    @property
    def postprocessed(self) -> bool:
        """True when the model runs NMS itself (it takes ``scale_factor``)."""
        return "scale_factor" in self.input_names

    def prepare(self, image: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pre-process an RGB uint8 image: (the feeds for :meth:`run`, ``im_shape`` /
        ``scale_factor`` info for :meth:`postprocess`)."""
        x, info = preprocess(image, self.config)
        feeds = {"image": x[None]}
        for extra in ("scale_factor", "im_shape"):
            if extra in self.input_names:
                feeds[extra] = info[extra][None]
        return feeds, info

    def postprocess(self, outputs: list[Any], info: dict[str, Any]) -> Detections:
        """The detections of the model's ``outputs`` (boxes in original-image pixels)."""
        if self.postprocessed:
            return Detections.from_rows(outputs[0])
        scores, dists = split_outputs(outputs)
        self.config.check_classes(int(scores[0].shape[-1]))  # for engines declaring no shapes
        size = self.config.input_size
        assert size is not None
        head = HeadOutputs.of(scores, dists, size, info["scale_factor"])
        if self.nms_mode == "deploy":
            return deploy_postprocess(head, info["im_shape"], self.nms)
        return multiclass_nms(head.boxes, head.scores, self.nms)  # decodes the rows it visits

    def detect(self, image: Any) -> tuple[Detections, dict[str, float]]:
        """Detections of one RGB uint8 image (boxes in its pixels), and milliseconds per
        stage: ``preprocess``, ``inference``, ``postprocess``."""
        t0 = time.perf_counter()
        feeds, info = self.prepare(image)
        t1 = time.perf_counter()
        outputs = self.runtime.run(feeds)
        t2 = time.perf_counter()
        detections = self.postprocess(outputs, info)
        t3 = time.perf_counter()
        ms = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}
        ms["postprocess"] = (t3 - t2) * 1e3
        return detections, ms
