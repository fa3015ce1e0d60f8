"""Turn what the user named (model ids, .onnx files, Paddle inference dirs) into benchmark
targets: one usable path per (model, engine), or the reason there is none.

Model ids use the no-post-processing variant by default (as upstream measured), falling back
to the post-processed tarball for models that have no other (see
:func:`picozoo.paddle_dir.inference_kind`): ONNX Runtime benches the converted ONNX
(``picozoo.convert.convert``, converted once and cached), Paddle Inference the pulled tarball.

>>> t = file_target("model.onnx", "onnxruntime")
>>> t.label, t.failure.error
('model', 'model.onnx: no such file or directory')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelFileError, PicozooError
from ..hub.registry import Model, Registry
from ..paddle_dir import find_paddle_model, inference_kind
from ..targets import Target, resolve_arg
from .records import ArtifactInfo, Cell, CellResult, Failure, Measurement

if TYPE_CHECKING:
    from ..hub.store import Store


@dataclass(frozen=True)
class BenchTarget:
    """One (model, engine) to benchmark; ``path`` is None when ``failure`` says why."""

    label: str
    engine: str
    path: Path | None = None
    model: Model | None = None
    postprocess: bool = False
    input_size: tuple[int, int] | None = None
    failure: Failure | None = None
    provenance: Mapping[str, Any] | None = None

    def cell(
        self,
        threads: int,
        result: CellResult,
        *,
        artifact_sha256: str | None = None,
        modelinfo: ArtifactInfo | None = None,
    ) -> Cell:
        """The result cell of this target measured with ``threads`` (its input size is what
        was fed, when the worker fed an image).

        >>> t = file_target("/nonexistent.onnx", "onnxruntime")
        >>> t.cell(4, t.failure).to_dict()["status"]
        'failed'
        """
        m = self.model
        fed = result.image_size() if isinstance(result, Measurement) else None
        return Cell(
            model=self.label,
            model_id=m.id if m else None,
            name=m.name if m else None,
            family=m.family if m else None,
            source=str(self.path) if self.path else None,
            postprocess=self.postprocess,
            engine=self.engine,
            threads=threads,
            input_size=fed or self.input_size,
            claims=m.claims if m else None,
            artifact_sha256=artifact_sha256,
            modelinfo=modelinfo,
            result=result,
            provenance=self.provenance,
        )


def file_target(
    arg: str | Path, engine: str, input_size: tuple[int, int] | None = None
) -> BenchTarget:
    """A target for a file or folder, benched as it is (a missing one is a failed target).

    >>> file_target("/nonexistent/model_dir", "paddle").failure.stage
    'prepare'
    """
    try:
        target = resolve_arg(str(arg), None)
    except ModelFileError as e:
        label = Target(str(arg), path=Path(arg)).label
        return BenchTarget(label, engine, failure=Failure("prepare", e.message, e.hint))
    assert target.path is not None
    if input_size is None and engine == "paddle":
        input_size = _exported_size(target.path)
    return BenchTarget(target.label, engine, target.path, input_size=input_size)


def _exported_size(path: Path) -> tuple[int, int] | None:
    """The input size in a Paddle model's ``infer_cfg.yml`` (None: none, or no Paddle model:
    the worker says so)."""
    try:
        return find_paddle_model(path).config().input_size
    except ModelFileError:
        return None


def model_target(
    store: Store,
    model: Model,
    engine: str,
    *,
    postprocess: bool,
    input_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchTarget:
    """Resolve a registry model to a usable artifact for ``engine`` (converting or pulling it);
    a failure costs this target only.

    >>> model_target(store, registry.get("picodet-s-416"), "paddle",
    ...              postprocess=False).provenance["artifact"]  # doctest: +SKIP
    'inference-nopp'
    """
    kind, postprocess = inference_kind(model.kinds, postprocess=postprocess)
    base = BenchTarget(model.id, engine, model=model, postprocess=postprocess)
    try:
        if engine == "onnxruntime":
            from ..convert import convert

            res = convert(
                store, Target(model.id, model=model), postprocess=postprocess, progress=progress
            )
            return _ready(base, res.path, input_size or model.input_size, res.provenance)
        from ..hub.pull import pull

        artifact = model.artifact(kind)
        if progress and store.lookup(artifact) is None:
            progress(f"{model.id}: pulling {kind} ({artifact.filename})")
        path = pull(store, artifact).path
        # the exported size (infer_cfg.yml) is what the inference model expects
        size = input_size or find_paddle_model(path).config().input_size or model.input_size
        return _ready(base, path, size, {"artifact": kind, "url": artifact.url})
    except PicozooError as e:
        failure = Failure("prepare", e.message, e.hint)
    except ImportError as e:
        failure = Failure("prepare", f"cannot prepare the model: {e}", "install picozoo[all]")
    except Exception as e:  # a converter/unpacker bug must cost one cell, not the whole run
        failure = Failure(
            "prepare",
            f"cannot prepare the model: {type(e).__name__}: {e}",
            "rerun with PICOZOO_DEBUG=1 and report the problem",
        )
    return dataclasses.replace(base, failure=failure, input_size=input_size or model.input_size)


def _ready(
    base: BenchTarget, path: Path, size: tuple[int, int], provenance: Mapping[str, Any]
) -> BenchTarget:
    return dataclasses.replace(base, path=Path(path), input_size=size, provenance=dict(provenance))


def cached_models(registry: Registry, store: Store) -> list[Model]:
    """Models that have anything in the store (downloads or conversions), in registry order.

    >>> from picozoo.hub.registry import load_registry
    >>> from picozoo.hub.store import Store
    >>> from picozoo.settings import Settings
    >>> cached_models(load_registry(), Store(Settings(cache_dir=Path("/nonexistent"))))
    []
    """
    ids = store.models_with_entries()
    return [m for m in registry.models if m.id in ids]


def resolve_targets(
    args: Sequence[str],
    engines: Sequence[str],
    *,
    store: Store,
    registry: Registry | None,
    postprocess: bool = False,
    input_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchTarget]:
    """Targets for every (argument, engine); no arguments: every model in the store.

    Unknown model ids raise (with suggestions); anything else that fails is kept as a target
    with ``failure`` set.

    >>> [t.engine for t in resolve_targets(["m.onnx"], ["onnxruntime", "paddle"], store=store,
    ...                                    registry=None)]  # doctest: +SKIP
    ['onnxruntime', 'paddle']
    """
    say = progress or (lambda _m: None)
    named: list[Model | str] = [resolve_arg(a, registry, must_exist=False).model or a for a in args]
    if not args and registry is not None:
        named = list(cached_models(registry, store))
    targets = []
    for item in named:
        for engine in engines:
            if isinstance(item, str):
                targets.append(file_target(item, engine, input_size))
            else:
                say(f"preparing {item.id} for {engine} ...")
                targets.append(
                    model_target(
                        store,
                        item,
                        engine,
                        postprocess=postprocess,
                        input_size=input_size,
                        progress=progress,
                    )
                )
    return targets
