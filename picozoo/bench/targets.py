"""Turn what the user named (model ids, .onnx files, Paddle inference dirs) into benchmark
targets: one usable path per (model, engine), or the reason there is none.

Model ids use the no-post-processing variant by default (as upstream measured): ONNX via
``picozoo.convert.ensure_onnx`` (converted once, cached), Paddle Inference via
``picozoo.fetch.pull`` of the ``inference-nopp`` (or ``inference``) tarball.

>>> t = file_target("model.onnx", "onnxruntime")
>>> t.label, t.model_id, t.path.name
('model', None, 'model.onnx')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PicozooError
from ..registry import INFERENCE_KINDS, Model, Registry


@dataclass
class Target:
    """One (model, engine) to benchmark; ``path`` is None when ``error`` says why."""

    label: str
    engine: str
    path: Path | None
    model: Model | None = None
    postprocess: bool = False
    input_size: tuple[int, int] | None = None
    error: str | None = None
    hint: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str | None:
        return self.model.id if self.model else None


def looks_like_path(arg: str) -> bool:
    """A CLI argument names a file/dir (not a model id) if it exists or looks like a path.

    >>> looks_like_path("picodet-s-416"), looks_like_path("x.onnx"), looks_like_path("./dir")
    (False, True, True)
    """
    return (
        "/" in arg
        or "\\" in arg
        or arg.endswith((".onnx", ".pdmodel", ".json"))
        or Path(arg).exists()
    )


def file_target(arg: str, engine: str, input_size: tuple[int, int] | None = None) -> Target:
    """A target for a plain file or directory, benched as it is."""
    path = Path(arg).expanduser()
    label = path.stem if path.suffix else path.name
    if path.is_file() and path.suffix in (".pdmodel", ".json"):
        label = path.parent.name
    size = input_size or (infer_cfg_size(path) if engine == "paddle" else None)
    return Target(label=label, engine=engine, path=path, input_size=size)


def infer_cfg_size(path: Path) -> tuple[int, int] | None:
    """The Resize ``target_size`` of a PaddleDetection ``infer_cfg.yml`` next to the model."""
    d = path if path.is_dir() else path.parent
    cfg = d / "infer_cfg.yml"
    if not cfg.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    for op in data.get("Preprocess") or []:
        if isinstance(op, dict) and op.get("type") == "Resize":
            size = op.get("target_size")
            if isinstance(size, list) and len(size) == 2:
                return int(size[0]), int(size[1])
    return None


def model_target(
    model: Model,
    engine: str,
    *,
    postprocess: bool,
    cache_dir: Path,
    input_size: tuple[int, int] | None = None,
) -> Target:
    """Resolve a registry model to a usable artifact for ``engine`` (converting or pulling it)."""
    t = Target(
        label=model.id,
        engine=engine,
        path=None,
        model=model,
        postprocess=postprocess,
        input_size=input_size or model.input_size,
    )
    try:
        if engine == "onnxruntime":
            from ..convert import ensure_onnx

            res = ensure_onnx(model, postprocess=postprocess, cache_dir=cache_dir)
            t.path = Path(res.onnx_path)
            t.provenance = dict(getattr(res, "provenance", {}) or {})
        else:
            from ..fetch import pull

            kind = "inference" if postprocess else "inference-nopp"
            if not model.has(kind) and not postprocess and model.has("inference"):
                kind = "inference"
                t.postprocess = True
            t.path = Path(pull(model.artifact(kind), cache_dir=cache_dir))
            t.provenance = {"artifact": kind, "url": model.artifact(kind).url}
            # the exported size (infer_cfg.yml) is what the inference model expects
            t.input_size = input_size or infer_cfg_size(t.path) or model.input_size
    except PicozooError as e:
        t.error, t.hint = e.message, e.hint
    except ImportError as e:
        t.error = f"cannot prepare the model: {e}"
        t.hint = "install picozoo[all]"
    except Exception as e:  # a converter/unpacker bug must cost one cell, not the whole run
        t.error = f"cannot prepare the model: {type(e).__name__}: {e}"
        t.hint = "rerun with PICOZOO_DEBUG=1 and report the problem"
    return t


def cached_models(registry: Registry, cache_dir: Path) -> list[Model]:
    """Models that have an inference tarball in the cache or a converted ONNX."""
    from ..cache import Cache
    from ..convert import list_converted

    cache = Cache(cache_dir)
    out = []
    for m in registry.models:
        has_tar = any(m.has(k) and cache.lookup(m.artifact(k)) is not None for k in INFERENCE_KINDS)
        if has_tar or list_converted(m.id, cache_dir):
            out.append(m)
    return out


def resolve_targets(
    args: Sequence[str],
    engines: Sequence[str],
    *,
    registry: Registry | None,
    cache_dir: Path,
    postprocess: bool = False,
    input_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Target]:
    """Targets for every (argument, engine). Unknown model ids raise (with suggestions);
    anything else that fails is kept as a target with ``error`` set."""
    say = progress or (lambda _m: None)
    items: list[str | Model] = []
    for a in args:
        if looks_like_path(a):
            items.append(a)
        else:
            if registry is None:
                raise PicozooError(f"{a!r} is not a file", hint="give a path to an .onnx file")
            items.append(registry.get(a))
    if not args and registry is not None:
        items = list(cached_models(registry, cache_dir))
    targets = []
    for item in items:
        for engine in engines:
            if isinstance(item, str):
                targets.append(file_target(item, engine, input_size))
            else:
                say(f"preparing {item.id} for {engine} ...")
                targets.append(
                    model_target(
                        item,
                        engine,
                        postprocess=postprocess,
                        cache_dir=cache_dir,
                        input_size=input_size,
                    )
                )
    return targets
