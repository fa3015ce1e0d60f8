"""``picozoo infer`` and ``picozoo eval`` as one library call each: :func:`infer` and
:func:`evaluate`.

This module is light: numpy, OpenCV and the engines are imported when a function runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..hub.eval_result import EvalResult
    from ..hub.registry import Registry
    from ..hub.store import Store
    from ..resolve import Convert
    from .infer import InferReport

Progress = Callable[[str], None]


class _Context:
    """The store and the registry a call works with (default: from the environment); the
    registry is loaded only when a model id needs it."""

    def __init__(self, store: Store | None, registry: Registry | None) -> None:
        if store is None:
            from ..hub.store import Store
            from ..settings import Settings

            store = Store(Settings.from_env())
        self.store = store
        self._registry = registry

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from ..hub.registry import load_registry

            self._registry = load_registry(self.store.settings.registry_path)
        return self._registry


def infer(
    model: str,
    images: Sequence[str | Path],
    *,
    engine: str = "onnxruntime",
    precision: str = "fp32",
    threads: int = 1,
    threshold: float | None = None,
    config: str | Path | None = None,
    out_dir: str | Path | None = None,
    nms: str = "eval",
    iou: float | None = None,
    conf: float | None = None,
    store: Store | None = None,
    registry: Registry | None = None,
    convert: Convert | None = None,
    progress: Progress | None = None,
) -> InferReport:
    """Detect objects in ``images`` with ``model``, as PaddleDetection deploys it.

    No-post-processing models are decoded with upstream's evaluation NMS (score 0.025, IoU
    0.6, top-k 1000, keep 100), then cut at ``threshold`` (score >= it); ``nms="deploy"``
    decodes them as upstream's ``deploy/python/infer.py`` does (score > 0.4, ``infer_cfg.yml``'s
    IoU, boxes clipped to the image; score > ``threshold``: see :mod:`picozoo.detect.deploy`).
    Models exported with NMS run as they are.

    Args:
        model: a model id (its inference tarball or ONNX is pulled if missing), a Paddle
            inference folder, or an ``.onnx`` file.
        images: image files (JPEG, PNG, BMP, WebP, TIFF...), folders (their image files), or
            glob patterns (``"imgs/*.jpg"``: the image files they match; none is refused).
            Only regular files are read (a FIFO or a device is refused); an image above
            ``PICOZOO_MAX_PIXELS`` (100 MP) is refused from its header, before decoding.
        engine: ``onnxruntime``, ``paddle``, ``openvino``, ``mnn`` or ``ncnn`` (the last three
            run the model converted from its ONNX, converted first when missing: that needs
            ``convert``).
        precision: the engine's precision (``fp32``; openvino ``fp16``/``bf16``, mnn
            ``fp16``/``int8``, ncnn ``fp16``). What the engine computes in is read back after
            loading; a precision this CPU cannot run (OpenVINO bf16 without AVX512-BF16/AMX,
            fp16 on x86 for MNN and ncnn...) is refused, as ``bench`` skips such a cell.
        threads: the engine's thread count.
        threshold: keep detections scoring at least this (default: ``infer_cfg.yml``'s
            ``draw_threshold``, 0.5 upstream).
        config: the ``infer_cfg.yml`` of a bare ``.onnx`` file.
        out_dir: also write each image with its boxes drawn, in its own format, as
            ``<out_dir>/<stem><suffix>`` (``<stem>-2<suffix>``... when that name is taken by
            another input's output or is one of the inputs: an input is never overwritten),
            and the detections kept (the rows) as COCO results in
            ``<out_dir>/results.json`` (``image_id``: the file's number when every name is
            one, as COCO's ``000000000139.jpg``, else its position; ``file_name``).
        nms: ``eval`` (upstream's evaluation settings, the default) or ``deploy`` (upstream's
            deploy decoding).
        iou, conf: replace the NMS IoU and score thresholds of ``nms``.
        store, registry: the cache and the model registry (default: from the environment).
        convert: :func:`picozoo.convert.convert`, for an engine whose file must be converted
            first (detection sits below conversion, so it is passed in; without it such an
            engine is refused with a UsageError saying so).
        progress: called with one line per image (detections, per-stage milliseconds).

    Returns:
        An :class:`~picozoo.detect.infer.InferReport`: ``rows`` (COCO-results-style dicts:
        image, category, ``category_id`` (the data set's id: COCO's for a model of COCO's 80
        classes, else the class index), bbox ``[x, y, w, h]``, score), per-image
        ``timings``, the ``written`` images, ``results_json``, the ``nms`` that ran, the
        ``engine``, ``executed_precision`` and ``threads`` that ran, and ``timing_line()``.

    Raises:
        UsageError: an unknown model id, an unusable file (not a regular file, empty, not an
            image, above the pixel cap), a missing ``infer_cfg.yml``.
        DiskError: ``out_dir`` is on a full or read-only disk.
        EngineError, MissingDependencyError: the engine cannot run the model, or is missing.
        PrecisionUnavailableError: an :class:`~picozoo.errors.EngineError` (exit 13): the
            engine computes in another precision than ``precision`` on this CPU.

    Example:
        >>> import picozoo.detect
        >>> report = picozoo.detect.infer("picodet-s-416", ["dog.jpg"])  # doctest: +SKIP
        >>> report.rows[0]["category"], round(report.rows[0]["score"], 2)  # doctest: +SKIP
        ('dog', 0.91)
    """
    from .infer import infer_images

    return infer_images(
        _Context(store, registry),
        model,
        [Path(i) for i in images],
        engine=engine,
        threads=threads,
        threshold=threshold,
        config=Path(config) if config is not None else None,
        out_dir=Path(out_dir) if out_dir is not None else None,
        precision=precision,
        nms=nms,
        iou=iou,
        conf=conf,
        convert=convert,
        progress=progress,
    )


def evaluate(
    model: str,
    coco_dir: str | Path,
    *,
    ann: str | Path | None = None,
    limit: int | None = None,
    engine: str = "onnxruntime",
    precision: str = "fp32",
    threads: int = 1,
    config: str | Path | None = None,
    nms: str = "eval",
    iou: float | None = None,
    conf: float | None = None,
    save_json: str | Path | None = None,
    store: Store | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
    tick: Callable[[int, int], None] | None = None,
    convert: Convert | None = None,
) -> EvalResult:
    """COCO mAP of ``model`` on a COCO-format data set, with upstream's evaluation settings.

    Every image goes the way of :func:`infer` (no score cut: NMS score 0.025, keep 100); the
    detections are scored with COCO's protocol. The result is cached in the store by (model
    file, engine, precision as executed, parsed ``infer_cfg.yml``, NMS settings, the annotation
    file's
    bytes and each image's path, size, mtime, ctime and inode): a second call on the same
    inputs is instant, any change measures again. When the cache cannot be written (full or
    read-only disk) the result is still returned, with a warning.

    Args:
        model: a model id, a Paddle inference folder, or an ``.onnx`` file (as :func:`infer`).
        coco_dir: ``val2017/`` + ``annotations/instances_val2017.json``, or the image folder
            of ``ann``.
        ann: a COCO-format annotation JSON (default: ``annotations/instances_val2017.json``).
        limit: only the first ``limit`` images (by id).
        engine, precision, threads, config, nms, iou, conf, store, registry, convert,
            progress: as :func:`infer` (a changed NMS setting is part of the cache key).
        save_json: also write the COCO results file (``image_id``, the data set's
            ``category_id``, ``bbox``, ``score``) there; the images are then run again
            even when the result is cached.
        tick: called with ``(done, total)`` images as the evaluation goes.

    Returns:
        The typed result (:class:`~picozoo.hub.eval_result.EvalResult`): ``stats`` (``AP``,
        ``AP50``, ... the 12 COCO stats, as fractions; ``.ap``/``.ap50`` for short),
        ``per_class_ap``, ``images``, ``images_per_s``, the model file's ``model_sha256``,
        ``engine``, ``precision`` (as executed: ``executed_precision`` says it was read back
        from the engine, ``precision_note`` how), ``threads``; ``.to_dict()`` is the
        ``picozoo.eval/1`` JSON.

    Raises:
        UsageError: an unknown model id, a data set without the model's classes, a COCO file
            that is malformed (one line naming the file and the field: ids, ``file_name``
            outside ``coco_dir``, ``bbox``, categories, no annotations) or larger than
            ``PICOZOO_MAX_ANNOTATION_BYTES`` (512 MiB), an unusable image (as :func:`infer`).
        EngineError: the engine cannot run the model, or it gave a NaN/infinite box or score;
            :class:`~picozoo.errors.PrecisionUnavailableError`: it computes in another
            precision than ``precision`` on this CPU (refused before a cached result is
            served: nothing is stored under a precision that did not run).
        MissingDependencyError: the engine is missing.

    Example:
        >>> import picozoo.detect
        >>> r = picozoo.detect.evaluate("picodet-s-416", "~/data/coco")  # doctest: +SKIP
        >>> round(r.ap * 100, 1)  # doctest: +SKIP
        32.5
    """
    from .evaluate import run_eval

    return run_eval(
        _Context(store, registry),
        model,
        coco_dir=Path(coco_dir).expanduser(),
        ann=Path(ann).expanduser() if ann is not None else None,
        limit=limit,
        engine=engine,
        threads=threads,
        config=Path(config) if config is not None else None,
        precision=precision,
        nms=nms,
        iou=iou,
        conf=conf,
        save_json=Path(save_json).expanduser() if save_json is not None else None,
        progress=progress,
        tick=tick,
        convert=convert,
    )


__all__ = ["evaluate", "infer"]
