"""``picozoo eval`` as a library call: a model on a COCO-format set, mAP like upstream's.

Every image goes through the same path as ``infer`` (upstream pre-processing, the model on
its engine, picozoo's decoder + NMS with upstream's evaluation settings: score 0.025, IoU 0.6,
top-k 1000, keep 100, unless ``--nms deploy``/``--iou``/``--conf`` change them); the
detections are mapped to the annotation file's category ids and
scored with COCO's protocol. Results are cached in the store
(:meth:`~picozoo.hub.store.Store.write_eval`) by (model file sha256, engine, precision as
executed -- read back from the engine, which is loaded first for a precision other than fp32,
so a precision this CPU cannot run is refused before any cached result is served -- data set
fingerprint: the annotation file's bytes and each image's path, size, mtime, ctime and
inode; NMS settings; the parsed ``infer_cfg.yml``: every pre-processing value and the labels),
so a second run is instant and any change to what is measured measures again. A result that
cannot be cached (full or read-only disk) is still returned, with a warning.

>>> r = run_eval(app, "picodet-s-416", coco_dir=Path("~/coco").expanduser())  # doctest: +SKIP
>>> round(r.ap, 3)  # doctest: +SKIP
0.325
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import sha256_file
from ..errors import EngineError, UsageError
from ..hub.eval_result import EvalResult, eval_digest
from ..paddle_dir import InferConfig
from ..runtime.base import describe_precision
from ..threads import oversubscription_warning
from .coco import class_to_category, evaluate, load_coco
from .deploy import describe_nms, nms_record, nms_settings
from .detector import Detector
from .images import DEFAULT_MAX_PIXELS, stat_regular
from .preprocess import read_image
from .resolve import resolve_runnable

if TYPE_CHECKING:
    from ..resolve import Convert

Tick = Callable[[int, int], None]
log = logging.getLogger("picozoo.detect")


def model_sha256_of(path: Path) -> str:
    """What :func:`model_sha256` hashes: the file's name, or a Paddle folder's two files.

    >>> model_sha256_of(Path("/m/model.onnx"))
    'model.onnx'
    """
    if not path.is_dir():
        return path.name
    from ..paddle_dir import find_paddle_model

    m = find_paddle_model(path)
    files = f"{m.model_file.name} + {m.params_file.name}" if m.params_file else m.model_file.name
    return f"{files} of {path.name}/ (sha256 of their two sha256 hex digests)"


def model_sha256(path: Path) -> str:
    """sha256 of a model file, or of a Paddle folder's model + params files."""
    if path.is_file():
        return sha256_file(path)
    from ..paddle_dir import find_paddle_model

    return find_paddle_model(path).sha256()["combined"]


def run_eval(
    app: Any,
    model: str,
    *,
    coco_dir: Path,
    ann: Path | None = None,
    limit: int | None = None,
    engine: str = "onnxruntime",
    threads: int = 1,
    config: Path | None = None,
    precision: str = "fp32",
    nms: str = "eval",
    iou: float | None = None,
    conf: float | None = None,
    save_json: Path | None = None,
    convert: Convert | None = None,
    progress: Callable[[str], None] | None = None,
    tick: Tick | None = None,
) -> EvalResult:
    """Evaluate ``model`` on the COCO set at ``coco_dir``; see the module docstring.
    ``convert``, ``nms``, ``iou``, ``conf``: as in :func:`picozoo.detect.infer.infer_images`;
    ``save_json``: write the COCO results there too (measured again even when cached: the
    cache keeps the scores, not the detections)."""
    limits = app.store.settings.inputs
    if config is not None:
        stat_regular(config, "config")
    nms_settings(nms, None)  # an unknown mode is refused before anything is read
    warning = oversubscription_warning(threads)
    if warning:
        log.warning(warning)
    data = load_coco(coco_dir, ann, limit, max_bytes=limits.max_annotation_bytes)
    runnable = resolve_runnable(model, store=app.store, registry=app.registry, engine=engine,
                                config=config, precision=precision, convert=convert,
                                progress=progress)  # fmt: skip
    cfg = runnable.config
    if cfg.labels and len(cfg.labels) != len(data.category_ids):
        raise UsageError(
            f"the model has {len(cfg.labels)} classes, {data.ann_file.name} has "
            f"{len(data.category_ids)} categories",
            hint="evaluate on a data set with the model's classes",
        )
    settings = nms_settings(nms, cfg, iou=iou, conf=conf)

    def open_detector() -> Detector:
        return Detector.open(runnable.path, config=cfg, engine=engine, threads=threads,
                             nms=settings, precision=precision, nms_mode=nms)  # fmt: skip

    # An engine asked for a reduced precision may compute in another one on this CPU: it is
    # loaded (and a precision it cannot run refused) before a cached result is served, so the
    # key holds the precision that runs. Every engine runs fp32 as asked.
    detector = open_detector() if precision != "fp32" else None
    ran = detector.runtime.executed_precision if detector is not None else precision
    key: dict[str, Any] = {
        "model_sha256": model_sha256(runnable.path),
        "engine": engine,
        "precision": ran,
        "dataset": data.fingerprint,
        "nms": nms_record(nms, settings),
        "config": config_key(cfg),
    }
    identity: dict[str, Any] = {"ann_sha256": data.ann_sha256,
                                "dataset_images": data.listed_images,
                                "dataset_name": data.name,
                                "model_sha256_of": model_sha256_of(runnable.path)}  # fmt: skip
    cached = app.store.read_eval(key) if save_json is None else None
    if cached is not None and cached.digest() == eval_digest(key):
        log.info(describe_nms(nms, settings))
        if progress:
            progress(f"cached result: {app.store.eval_path(key)}")
        return dataclasses.replace(cached, **identity)  # an earlier version's lacks them
    if detector is None:
        detector = open_detector()
    log.info(describe_precision(detector.runtime))
    if detector.postprocessed and (nms != "eval" or iou is not None or conf is not None):
        raise UsageError(
            f"{runnable.label} runs its own NMS (exported with post-processing): --nms, --iou "
            "and --conf do not apply",
            hint="evaluate the model's no-post-processing export to change its NMS",
        )
    log.info(describe_nms(nms, settings, postprocessed=detector.postprocessed))
    to_cat = class_to_category(data.category_ids)
    paths = dict(data.images)
    results: list[dict[str, Any]] = []
    infer_s = 0.0
    t0 = time.perf_counter()
    images = detect_all(detector, data.images, limits.max_pixels)
    for n, (image_id, detections, ms) in enumerate(images, 1):
        infer_s += ms / 1e3
        if not detections.all_finite():
            raise EngineError(
                f"{runnable.label} gave a non-finite box or score on {paths[image_id]}",
                hint="the model or its infer_cfg.yml is broken (check mean/std); nothing was "
                "scored",
            )
        for row in detections.to_coco(""):
            category = to_cat.get(row["category_id"])
            if category is None:
                raise UsageError(
                    f"{runnable.label} detected class {row['category_id']}, but "
                    f"{data.ann_file.name} has only {len(to_cat)} categories",
                    hint="evaluate on a data set with the model's classes",
                )
            results.append({"image_id": image_id, "category_id": category,
                            "bbox": row["bbox"], "score": row["score"]})  # fmt: skip
        if tick:
            tick(n, len(data.images))
    wall = time.perf_counter() - t0
    if save_json is not None:
        from .infer import write_results

        write_results(results, save_json)
        if progress:
            progress(f"saved {len(results)} detections as COCO results to {save_json}")
    scores = evaluate(data.dataset, results, [i for i, _ in data.images])
    out = EvalResult(
        model=runnable.label,
        model_path=str(runnable.path),
        **key,
        images=len(data.images),
        ann_file=str(data.ann_file),
        stats=scores["stats"],
        per_class_ap={
            name: scores["per_class_ap"].get(cat)
            for cat, name in zip(data.category_ids, data.category_names, strict=True)
        },
        images_per_s=len(data.images) / wall if wall else None,
        inference_images_per_s=len(data.images) / infer_s if infer_s else None,
        detections=len(results),
        **identity,
        executed_precision=detector.runtime.executed_precision or precision,
        precision_note=detector.runtime.precision_note or None,
        threads=threads,
    )
    try:
        app.store.write_eval(out)
    except OSError as e:  # a full or read-only disk: the result stands, only its cache failed
        log.warning(f"warning: could not cache the result in {app.store.evals_root} "
                    f"({e.strerror or e}); it will be computed again next time")  # fmt: skip
    return out


def config_key(cfg: InferConfig) -> dict[str, Any]:
    """The parsed ``infer_cfg.yml`` as it shapes an evaluation: every pre-processing value,
    the labels and the NMS section (JSON-ready: what goes into the eval cache key).

    >>> config_key(InferConfig(input_size=(320, 320)))["input_size"]
    [320, 320]
    """
    fields = dataclasses.asdict(cfg)
    fields.pop("draw_threshold", None)  # infer's display cut; eval keeps every detection
    return dict(json.loads(json.dumps(fields, sort_keys=True, default=str)))


def detect_all(
    detector: Detector, images: list[tuple[int, Path]], max_pixels: int = DEFAULT_MAX_PIXELS
) -> Any:
    """``(image_id, detections, inference ms)`` of every image, in order.

    A pipeline: while the engine runs image ``i`` (it releases the GIL), one helper thread
    decodes and NMS's image ``i - 1`` and reads and pre-processes image ``i + 1`` (OpenCV and
    numpy release it too), so only inference is on the critical path when a core is free.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        return detector.prepare(read_image(path, max_pixels))

    if not images:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(load, images[0][1])
        previous: tuple[int, Future[Any], float] | None = None
        for i, (image_id, _path) in enumerate(images):
            feeds, info = loading.result()
            if i + 1 < len(images):
                loading = pool.submit(load, images[i + 1][1])
            t = time.perf_counter()
            outputs = detector.runtime.run(feeds)
            ms = (time.perf_counter() - t) * 1e3
            if previous is not None:
                yield previous[0], previous[1].result(), previous[2]
            previous = (image_id, pool.submit(detector.postprocess, outputs, info), ms)
        assert previous is not None
        yield previous[0], previous[1].result(), previous[2]
