"""What ``infer``/``eval`` run: a model file for the engine, and its ``infer_cfg.yml``.

A model id runs its no-post-processing export (upstream measured and evaluated that way):
ONNX Runtime upstream's ``onnx-nopp`` when the model has one (else its tarball converted),
Paddle Inference the pulled ``inference-nopp`` folder (the post-processed tarball for legacy
models that have no other). The pre-processing comes from the tarball's ``infer_cfg.yml``
(pulled for it), or, for models published only as ONNX, is upstream's standard PicoDet COCO
pre-processing at the model's input size. A path is a Paddle inference
folder (its own ``infer_cfg.yml``) or an ``.onnx`` file (``--config``, else an
``infer_cfg.yml`` beside it).

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

from ..errors import ModelFileError, UsageError
from ..hub.registry import INFERENCE_KINDS, Model, Registry
from ..hub.store import Store
from ..paddle_dir import INFER_CFG, InferConfig, find_paddle_model, inference_kind
from ..runtime.base import CONVERTED_ENGINES
from ..targets import Target, resolve_arg
from .coco import COCO80


@dataclass(frozen=True)
class Runnable:
    """A model file ready for an engine, with its pre-processing config."""

    label: str
    path: Path
    config: InferConfig
    engine: str


def resolve_config(model: Path, config: Path | None) -> InferConfig:
    """The ``infer_cfg.yml`` of ``model``: ``config`` if given, else the one beside it."""
    if config is None:
        folder = model if model.is_dir() else model.parent
        config = folder / INFER_CFG
        if not config.is_file():
            raise UsageError(
                f"{model} has no {INFER_CFG} beside it",
                hint=f"give the model's pre-processing with --config {INFER_CFG}",
            )
    cfg = InferConfig.load(config)
    if cfg is None or cfg.input_size is None:
        raise ModelFileError(
            f"{config}: not an infer_cfg.yml with a Resize target_size",
            hint="give the infer_cfg.yml exported with the model",
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
    progress: Callable[[str], None] | None = None,
) -> Runnable:
    """Resolve a model id or path (see the module docstring). OpenVINO, MNN and NCNN run
    their own formats: an ONNX file, a Paddle folder or a model id is converted for them
    first (cached, parity-checked), a file already in that format runs as it is."""
    target = resolve_arg(arg, registry)
    if target.path is not None:
        path = target.path
        cfg = resolve_config(path, config)
        if engine in CONVERTED_ENGINES and path.suffix not in CONVERTED_ENGINES[engine]:
            path = _engine_file(store, target, engine, precision, True, progress)
        elif engine == "paddle" or path.is_dir():
            path = find_paddle_model(path).directory
        return Runnable(target.label, path, cfg, engine)
    assert target.model is not None
    return _model_runnable(target.model, store, engine, config, precision, progress)


def _engine_file(
    store: Store,
    target: Target,
    engine: str,
    precision: str,
    postprocess: bool,
    progress: Callable[[str], None] | None,
) -> Path:
    from ..convert import convert

    result = convert(store, target, to=engine, postprocess=postprocess, precision=precision,
                     progress=progress)  # fmt: skip
    return result.path


def _model_runnable(
    model: Model,
    store: Store,
    engine: str,
    config: Path | None,
    precision: str,
    progress: Callable[[str], None] | None,
) -> Runnable:
    from ..hub.pull import pull_announced
    from ..targets import onnx_kind, onnx_source

    def fetch(kind: str) -> Path:
        return pull_announced(store, model.artifact(kind), progress).path

    tarball = [k for k in INFERENCE_KINDS if model.has(k)]
    kind, postprocess = inference_kind(model.kinds, postprocess=False)
    folder = fetch(kind) if tarball and (engine == "paddle" or config is None) else None
    if config is not None:
        cfg = resolve_config(Path(config), config)
    elif folder is not None:
        cfg = resolve_config(folder, None)
    else:  # upstream ONNX only: the standard PicoDet COCO pre-processing at its input size
        cfg = InferConfig(input_size=model.input_size, labels=COCO80)
    if engine == "paddle":
        if folder is None:
            raise UsageError(f"{model.id} has no Paddle inference tarball",
                             hint="run it on ONNX Runtime: --engine onnxruntime")  # fmt: skip
        return Runnable(model.id, folder, cfg, engine)
    if engine in CONVERTED_ENGINES:
        target = Target(model.id, model=model)
        path = _engine_file(store, target, engine, precision, postprocess, progress)
        return Runnable(model.id, path, cfg, engine)
    if onnx_source(model, "auto", postprocess=False) == "upstream":
        if progress:
            progress(f"{model.id}: running upstream's {onnx_kind(False)} ONNX")
        return Runnable(model.id, fetch(onnx_kind(False)), cfg, engine)
    from ..convert import convert

    result = convert(store, Target(model.id, model=model), postprocess=postprocess,
                     progress=progress)  # fmt: skip
    return Runnable(model.id, result.path, cfg, engine)
