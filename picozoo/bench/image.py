"""``bench --image FILE``: a real image, pre-processed exactly as ``picozoo infer`` does it
(:func:`picozoo.detect.preprocess.preprocess` with the model's ``infer_cfg.yml``), fed to a
cell instead of seeded noise. A post-processed model's NMS costs what it costs on that image
(seeded noise makes every anchor a candidate); the cell records the image's name and sha256.

Each target's arrays are written once to an ``.npz`` in ``folder`` (``image``, plus
``scale_factor`` and ``im_shape`` as infer feeds them); the worker feeds those of the model's
inputs it has (see :func:`picozoo.bench.worker.make_feeds`).

The pre-processing of a target: the ``infer_cfg.yml`` beside its file or folder; for a
model id, its inference tarball's of the benched kind (pulled for it if missing, as ``infer``
does), or, for models published only as ONNX, upstream's standard PicoDet COCO
pre-processing at the model's input size. A file with none fails its cell, saying so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import sha256_file
from ..errors import PicozooError
from ..hub.registry import INFERENCE_KINDS
from ..paddle_dir import INFER_CFG, InferConfig, config_beside
from ..resolve import plan, realize
from ..targets import Target
from .records import Failure, FedImage
from .targets import BenchTarget

if TYPE_CHECKING:
    from ..hub.store import Store

Progress = Callable[[str], None]


def image_config(store: Store, t: BenchTarget, progress: Progress | None = None) -> InferConfig:
    """The pre-processing of target ``t`` (see the module docstring); raises a
    :class:`~picozoo.errors.PicozooError` saying what is missing."""
    from ..detect.coco import COCO80
    from ..detect.resolve import resolve_config

    assert t.path is not None
    beside = config_beside(t.path)
    model = t.model
    if model is None or (beside is not None and t.origin == "file"):
        if beside is None:
            from ..errors import UsageError

            raise UsageError(
                f"{t.path} has no {INFER_CFG} beside it: --image needs the model's pre-processing",
                hint=f"put the model's {INFER_CFG} beside it, or bench it without --image",
            )
        return resolve_config(t.path, None)
    if any(model.has(k) for k in INFERENCE_KINDS):
        folder = plan(Target(model.id, model=model), "paddle", postprocess=t.postprocess)
        ready = realize(folder, store, progress=progress)
        return resolve_config(ready.path, None, artifact=f"{model.id} {folder.kind}")
    return InferConfig(input_size=model.input_size, labels=COCO80)


def with_image(
    targets: Sequence[BenchTarget],
    image: Path,
    *,
    store: Store,
    folder: Path,
    progress: Progress | None = None,
) -> list[BenchTarget]:
    """``targets`` fed ``image`` pre-processed for each (its arrays written to ``folder``); a
    target whose pre-processing cannot be had fails (stage ``prepare``) with the reason.
    Reading the image is refused at once (exit 2) when it is not one."""
    import numpy as np

    from ..detect.preprocess import preprocess, read_image

    rgb = read_image(Path(image))
    fed = FedImage(Path(image).name, sha256_file(Path(image)), (rgb.shape[0], rgb.shape[1]))
    out: list[BenchTarget] = []
    for n, t in enumerate(targets):
        if t.path is None:
            out.append(t)
            continue
        try:
            x, info = preprocess(rgb, image_config(store, t, progress))
        except PicozooError as e:
            out.append(dataclasses.replace(t, path=None, failure=Failure("prepare", e.message,
                                                                          e.hint)))  # fmt: skip
            continue
        feeds = folder / f"inputs-{n}.npz"
        np.savez(
            feeds,
            image=x[None],
            scale_factor=info["scale_factor"][None],
            im_shape=info["im_shape"][None],
        )
        out.append(dataclasses.replace(t, feeds=feeds, image=fed))
    return out
