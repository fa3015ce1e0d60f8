"""``picozoo infer`` as a library call: images in, drawn images and COCO-style rows out.

>>> report = infer_images(app, "picodet-s-416", [Path("dog.jpg")])  # doctest: +SKIP
>>> report.rows[0]["category"], report.timing_line()  # doctest: +SKIP
('dog', 'mean per image: preprocess 3.1 ms, inference 14.2 ms, postprocess 1.0 ms')
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paddle_dir import EVAL_NMS
from .detector import Detector
from .draw import draw, out_error, write_image
from .images import image_files, output_paths, stat_regular
from .preprocess import read_image
from .resolve import resolve_runnable

if TYPE_CHECKING:
    from ..resolve import Convert

log = logging.getLogger("picozoo.detect")


@dataclass
class InferReport:
    """COCO-results-style rows of every image, and per-stage milliseconds per image."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def timing_line(self) -> str:
        if not self.timings:
            return "no image"
        stages = ("preprocess", "inference", "postprocess")
        mean = {s: sum(t[s] for t in self.timings) / len(self.timings) for s in stages}
        return "mean per image: " + ", ".join(f"{s} {mean[s]:.1f} ms" for s in stages)


def infer_images(
    app: Any,
    model: str,
    images: Sequence[Path],
    *,
    engine: str = "onnxruntime",
    threads: int = 1,
    threshold: float | None = None,
    config: Path | None = None,
    out_dir: Path | None = None,
    precision: str = "fp32",
    convert: Convert | None = None,
    progress: Callable[[str], None] | None = None,
) -> InferReport:
    """Run ``model`` on ``images``; with ``out_dir``, write ``<stem>.jpg`` drawn images.
    ``convert`` (:func:`picozoo.convert.convert`) makes the file of an engine that cannot
    run the model as it is (OpenVINO, MNN, ncnn; ONNX Runtime on a tarball-only model)."""

    """Run ``model`` on ``images`` (a directory stands for its image files); with
    ``out_dir``, write each drawn image as ``<stem>.jpg`` (``<stem>-2.jpg``... when two
    inputs share a stem or the name is one of the inputs: see :func:`.images.output_paths`).

    Every input is checked before the model is loaded: regular files only (see
    :mod:`.images`); each image's pixel count is read from its header before decoding."""
    max_pixels = app.store.settings.inputs.max_pixels
    images = image_files(images)
    for path in images:
        stat_regular(path, "image")
    if config is not None:
        stat_regular(config, "config")
    outputs = output_paths(images, out_dir) if out_dir is not None else None
    runnable = resolve_runnable(model, store=app.store, registry=app.registry, engine=engine,
                                config=config, precision=precision, convert=convert,
                                progress=progress)  # fmt: skip
    cfg = runnable.config
    detector = Detector.open(runnable.path, config=cfg, engine=engine, threads=threads,
                             nms=EVAL_NMS, precision=precision)  # fmt: skip
    if not cfg.labels and progress:  # said once: every row would show a class index
        progress(f"warning: {cfg.source or 'infer_cfg.yml'} has no label_list: classes are "
                 "shown by index")  # fmt: skip
    cut = cfg.draw_threshold if threshold is None else threshold
    report = InferReport()
    for i, path in enumerate(images):
        image = read_image(path, max_pixels)
        detections, ms = detector.detect(image)
        finite = detections.finite()
        if len(finite) < len(detections):
            log.warning(f"warning: {path}: {len(detections) - len(finite)} detection(s) with a "
                        "non-finite box or score dropped (the model or its infer_cfg.yml is "
                        "broken)")  # fmt: skip
        kept = finite.above(cut)
        report.rows += kept.to_coco(str(path), cfg.labels)
        report.timings.append(ms)
        if progress:
            renamed = outputs is not None and outputs[i].name != f"{path.stem}.jpg"
            progress(f"{path}: {len(kept)} detection(s), " + ", ".join(
                f"{k} {v:.1f} ms" for k, v in ms.items())
                + (f" (drawn as {outputs[i]})" if outputs and renamed else ""))  # fmt: skip
        if outputs is not None:
            assert out_dir is not None
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise out_error(e, out_dir) from e
            report.written.append(write_image(draw(image, kept, cfg.labels), outputs[i]))
    return report
