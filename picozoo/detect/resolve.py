"""What ``infer``/``eval`` run: a model file for the engine, and its ``infer_cfg.yml``.

A model id runs its no-post-processing export (upstream measured and evaluated that way):
ONNX Runtime the converted ONNX, Paddle Inference the pulled ``inference-nopp`` folder (the
post-processed tarball for legacy models that have no other). A path is a Paddle inference
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
from ..hub.registry import Registry
from ..hub.store import Store
from ..paddle_dir import INFER_CFG, InferConfig, find_paddle_model, inference_kind
from ..targets import Target, resolve_arg


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
    progress: Callable[[str], None] | None = None,
) -> Runnable:
    """Resolve a model id or path (see the module docstring)."""
    target = resolve_arg(arg, registry)
    if target.path is not None:
        path = target.path
        if engine == "paddle" or path.is_dir():
            path = find_paddle_model(path).directory
        return Runnable(target.label, path, resolve_config(path, config), engine)
    assert target.model is not None
    model = target.model
    kind, postprocess = inference_kind(model.kinds, postprocess=False)
    from ..hub.pull import pull

    artifact = model.artifact(kind)
    if progress and store.lookup(artifact) is None:
        progress(f"{model.id}: pulling {kind} ({artifact.filename})")
    folder = pull(store, artifact).path
    cfg = resolve_config(folder, config)
    if engine == "paddle":
        return Runnable(model.id, folder, cfg, engine)
    from ..convert import convert

    result = convert(store, Target(model.id, model=model), postprocess=postprocess,
                     progress=progress)  # fmt: skip
    return Runnable(model.id, result.path, cfg, engine)
