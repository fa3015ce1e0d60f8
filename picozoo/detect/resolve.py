"""What ``infer``/``eval`` run: a model file for the engine, and its ``infer_cfg.yml``.

A model id runs its no-post-processing export (upstream measured and evaluated that way):
ONNX Runtime upstream's ``onnx-nopp`` when the model has one (else its tarball converted),
Paddle Inference the pulled ``inference-nopp`` folder (the post-processed tarball for legacy
models that have no other). The pre-processing comes from the tarball's ``infer_cfg.yml``
(pulled for it), or, for models published only as ONNX, is upstream's standard PicoDet COCO
pre-processing at the model's input size. A path is a Paddle inference
folder (its own ``infer_cfg.yml``) or an ``.onnx`` file (``--config``, else an
``infer_cfg.yml`` beside it). Which file runs is :mod:`picozoo.resolve`'s decision; a
conversion it needs is passed in (``convert``): :mod:`picozoo.detect` sits below
:mod:`picozoo.convert`, which proves its conversions with detection agreement.

>>> resolve_config(Path("/nonexistent/m.onnx"), None)
Traceback (most recent call last):
...
picozoo.errors.UsageError: /nonexistent/m.onnx has no infer_cfg.yml beside it \
(give the model's pre-processing with --config infer_cfg.yml)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..hub.registry import INFERENCE_KINDS, Registry
from ..hub.store import Store
from ..paddle_dir import INFER_CFG, InferConfig, config_beside, find_paddle_model
from ..resolve import Convert, plan, realize, resolve
from ..targets import Target, resolve_arg
from .coco import COCO80


@dataclass(frozen=True)
class Runnable:
    """A model file ready for an engine, with its pre-processing config."""

    label: str
    path: Path
    config: InferConfig
    engine: str


def resolve_config(model: Path, config: Path | None, *, artifact: str | None = None) -> InferConfig:
    """The checked ``infer_cfg.yml`` of ``model``: ``config`` if given, else the one beside it
    (``artifact``: the label of the pulled tarball ``model`` is, whose config is refused with
    exit 5; a file the user gave is refused with exit 2)."""
    if config is None:
        config = config_beside(model)
        if config is None:
            raise UsageError(
                f"{model} has no {INFER_CFG} beside it",
                hint=f"give the model's pre-processing with --config {INFER_CFG}",
            )
    else:
        artifact = None
    cfg = InferConfig.load(config, artifact=artifact)
    if cfg.input_size is None:
        raise cfg.refuse(
            "no Resize step with a target_size: picozoo needs the model's input size",
            "Preprocess",
        )
    return cfg


def resolve_runnable(
    arg: str,
    *,
    store: Store,
    registry: Registry,
    engine: str,
    config: Path | None = None,
    precision: str = "fp32",
    convert: Convert | None = None,
    progress: Callable[[str], None] | None = None,
) -> Runnable:
    """Resolve a model id or path (see the module docstring; the file is
    :func:`picozoo.resolve.resolve`'s). OpenVINO, MNN and NCNN run their own formats: an ONNX
    file, a Paddle folder or a model id is converted for them first by ``convert``
    (:func:`picozoo.convert.convert`; cached, parity-checked), a file already in that format
    runs as it is."""
    target = resolve_arg(arg, registry)
    if target.path is not None:
        cfg = resolve_config(target.path, config)
        ready = resolve(target, engine, store=store, postprocess=True, precision=precision,
                        convert=convert, progress=progress)  # fmt: skip
        path = ready.path
        if ready.plan.origin == "file" and (engine == "paddle" or path.is_dir()):
            path = find_paddle_model(path).directory
        return Runnable(target.label, path, cfg, engine)
    model = target.model
    assert model is not None
    p = plan(target, engine, postprocess=False, precision=precision, verb="run")
    cfg = _model_config(store, target, config, progress)
    if p.origin == "upstream" and p.fmt == "onnx" and progress:
        progress(f"{model.id}: running upstream's {p.kind} ONNX")
    ready = realize(p, store, convert=convert, progress=progress)
    return Runnable(model.id, ready.path, cfg, engine)


def _model_config(
    store: Store,
    target: Target,
    config: Path | None,
    progress: Callable[[str], None] | None,
) -> InferConfig:
    """``config``; else the ``infer_cfg.yml`` of the model's inference tarball (pulled for
    it); else, for models published only as ONNX, upstream's standard PicoDet COCO
    pre-processing at the model's input size."""
    model = target.model
    assert model is not None
    if config is not None:
        return resolve_config(Path(config), config)
    if any(model.has(k) for k in INFERENCE_KINDS):
        folder = plan(target, "paddle", postprocess=False)
        label = f"{model.id} {folder.kind}"
        return resolve_config(realize(folder, store, progress=progress).path, None, artifact=label)
    return InferConfig(input_size=model.input_size, labels=COCO80)
