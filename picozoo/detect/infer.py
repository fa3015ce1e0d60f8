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

from ..errors import UsageError
from ..runtime.base import describe_precision
from ..threads import oversubscription_warning
from .coco import dataset_category_ids
from .deploy import describe_nms, nms_record, nms_settings
from .detector import Detector
from .draw import draw, out_error, write_image
from .images import image_files, output_paths, stat_regular
from .preprocess import read_image
from .resolve import resolve_runnable

if TYPE_CHECKING:
    from ..resolve import Convert

log = logging.getLogger("picozoo.detect")


#: The file of COCO results ``infer`` writes beside the drawn images in ``out_dir``
RESULTS_JSON = "results.json"


@dataclass
class InferReport:
    """COCO-results-style rows of every image, per-stage milliseconds per image, the drawn
    images ``written`` and the ``results_json`` file (with ``out_dir``), the ``nms`` that
    decoded them (:func:`.deploy.nms_record`; ``{"mode": "model"}`` for a post-processed
    model, which runs its own), and the ``engine``, ``executed_precision`` (read back from
    the engine after loading: a precision this CPU cannot run is refused) and ``threads``
    that ran them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    results_json: Path | None = None
    nms: dict[str, Any] = field(default_factory=dict)
    engine: str = ""
    executed_precision: str = ""
    threads: int = 0

    def saved_line(self, out_dir: Path) -> str:
        """``saved N images and results.json to DIR``."""
        n = len(self.written)
        return f"saved {n} image{'s' * (n != 1)} and {RESULTS_JSON} to {out_dir}"

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
    nms: str = "eval",
    iou: float | None = None,
    conf: float | None = None,
    convert: Convert | None = None,
    progress: Callable[[str], None] | None = None,
) -> InferReport:
    """Run ``model`` on ``images`` (a directory stands for its image files, a glob pattern for
    the image files it matches); with ``out_dir``, write each drawn image as
    ``<stem><suffix>`` in its input's format (``<stem>-2<suffix>``... when two inputs share a
    name or the name is one of the inputs: see :func:`.images.output_paths`) and the COCO
    results of every image as ``results.json``. ``convert``
    (:func:`picozoo.convert.convert`) makes the file of an engine that cannot run the model
    as it is (OpenVINO, MNN, ncnn; ONNX Runtime on a tarball-only model). ``nms``, ``iou``,
    ``conf``: which NMS decodes a no-post-processing model (:mod:`.deploy`).

    Every input is checked before the model is loaded: regular files only (see
    :mod:`.images`); each image's pixel count is read from its header before decoding."""
    max_pixels = app.store.settings.inputs.max_pixels
    images = image_files(images)
    for path in images:
        stat_regular(path, "image")
    if config is not None:
        stat_regular(config, "config")
    nms_settings(nms, None)  # an unknown mode is refused before anything is pulled
    outputs = output_paths(images, out_dir) if out_dir is not None else None
    warning = oversubscription_warning(threads)
    if warning:
        log.warning(warning)
    runnable = resolve_runnable(model, store=app.store, registry=app.registry, engine=engine,
                                config=config, precision=precision, convert=convert,
                                progress=progress)  # fmt: skip
    cfg = runnable.config
    settings = nms_settings(nms, cfg, iou=iou, conf=conf)
    detector = Detector.open(runnable.path, config=cfg, engine=engine, threads=threads,
                             nms=settings, precision=precision, nms_mode=nms)  # fmt: skip
    if detector.postprocessed and (iou is not None or conf is not None):
        raise UsageError(
            f"{runnable.label} runs its own NMS (exported with post-processing): --iou and "
            "--conf do not apply",
            hint="drop --iou/--conf, or run the model's no-post-processing export",
        )
    log.info(describe_precision(detector.runtime))
    log.info(describe_nms(nms, settings, postprocessed=detector.postprocessed))
    if not cfg.labels and progress:  # said once: every row would show a class index
        progress(f"warning: {cfg.source or 'infer_cfg.yml'} has no label_list: classes are "
                 "shown by index")  # fmt: skip
    cut = cfg.draw_threshold if threshold is None else threshold
    ids = dataset_category_ids(cfg.labels)
    report = InferReport(nms={"mode": "model"} if detector.postprocessed
                         else nms_record(nms, settings), engine=engine,
                         executed_precision=detector.runtime.executed_precision or precision,
                         threads=threads)  # fmt: skip
    image_ids = _image_ids(images)
    results: list[dict[str, Any]] = []
    for i, path in enumerate(images):
        image = read_image(path, max_pixels)
        detections, ms = detector.detect(image)
        finite = detections.finite()
        if len(finite) < len(detections):
            log.warning(f"warning: {path}: {len(detections) - len(finite)} detection(s) with a "
                        "non-finite box or score dropped (the model or its infer_cfg.yml is "
                        "broken)")  # fmt: skip
        # upstream's deploy code draws scores strictly above its threshold
        kept = finite.above(cut, strict=nms == "deploy" and not detector.postprocessed)
        rows = kept.to_coco(str(path), cfg.labels, ids)
        report.rows += rows
        results += [{"image_id": image_ids[i], "file_name": path.name,
                     "category_id": r["category_id"], "bbox": r["bbox"], "score": r["score"]}
                    for r in rows]  # fmt: skip
        report.timings.append(ms)
        if progress:
            renamed = outputs is not None and outputs[i].name != path.name
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
    if out_dir is not None:
        report.results_json = write_results(results, out_dir / RESULTS_JSON)
    return report


def _image_ids(images: Sequence[Path]) -> list[int]:
    """The ``image_id`` of each image in ``results.json``: the number its name is (COCO's
    ``000000000139.jpg`` is image 139) when every name is a distinct number, else its
    position in the input list (0, 1, ...), as upstream's ``save_coco_results``.

    >>> _image_ids([Path("000000000139.jpg"), Path("a/000000000285.png")])
    [139, 285]
    >>> _image_ids([Path("dog.jpg"), Path("139.jpg")])
    [0, 1]
    """
    stems = [p.stem for p in images]
    if all(s.isascii() and s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(
        stems
    ):
        return [int(s) for s in stems]
    return list(range(len(images)))


def write_results(results: list[dict[str, Any]], path: Path) -> Path:
    """Write COCO results (a JSON list of ``image_id``, ``category_id``, ``bbox``
    ``[x, y, w, h]``, ``score``) to ``path``, atomically; a full or read-only disk is one
    line (exit 12)."""
    import json

    from ..atomic import write_output
    from ..errors import PicozooError

    try:
        return write_output(path, (json.dumps(results) + "\n").encode())
    except PicozooError:
        raise
    except OSError as e:
        raise out_error(e, path) from e
