"""Turn what the user named (model ids, .onnx files, Paddle inference dirs) into benchmark
targets: one usable path per (model, engine), or the reason there is none.

Model ids use the no-post-processing variant by default (as upstream measured). Paddle
Inference benches the pulled inference tarball (falling back to the post-processed one for
models that have no other, see :func:`picozoo.paddle_dir.inference_kind`). ONNX Runtime benches
the ONNX that ``source`` selects (see :func:`picozoo.resolve.onnx_source`): upstream's own
ONNX (``onnx-nopp`` or ``onnx``, pulled on demand; this needs only the ``[bench]`` extra) or
one converted from the inference tarball (``picozoo.convert.convert``, converted once and
cached; ``[convert]``). A conversion already in the store (``picozoo convert``'s, see
:func:`picozoo.resolve.stored_onnx`) is benched as it is under ``auto`` and ``converted``:
``convert`` then ``bench`` benches the file just made; ``--source upstream`` benches
upstream's. OpenVINO, MNN and ncnn bench the file ``convert(..., to=engine,
precision=...)`` makes for them (from a model id, an ``.onnx`` file or a Paddle folder; their
own files are benched as they are). Which file that is, is :mod:`picozoo.resolve`'s decision.

>>> t = file_target("model.onnx", "onnxruntime")
>>> t.label, t.failure.error
('model', 'model.onnx: no such file or directory')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelFileError, PicozooError
from ..hub.registry import Model, Registry
from ..resolve import Plan, exported_size, onnx_kind, plan, realize, stored_onnx
from ..runtime.base import CONVERTED_ENGINES
from ..targets import Target, resolve_arg
from .engines import missing_engine_failure, runs_file
from .records import (
    ArtifactInfo,
    BenchSpec,
    Cell,
    CellResult,
    Failure,
    FedImage,
    MeasuredMap,
    Measurement,
)

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
    origin: str | None = None  #: ``upstream``, ``converted`` or ``file``
    precision: str = "fp32"
    feeds: Path | None = None  #: the pre-processed image's arrays (``bench --image``)
    image: FedImage | None = None  #: that image

    def spec(
        self, threads: int, *, warmup: int | str, min_iters: int, min_time_s: float, seed: int
    ) -> BenchSpec:
        """What the worker measures for this target at ``threads`` (the target must have a
        ``path``).

        >>> t = BenchTarget("m", "onnxruntime", Path("m.onnx"), precision="fp32")
        >>> t.spec(2, warmup=10, min_iters=100, min_time_s=2.0, seed=0).threads
        2
        """
        assert self.path is not None, self.failure
        return BenchSpec(
            self.path,
            self.engine,
            threads,
            warmup,
            min_iters,
            min_time_s,
            self.input_size,
            seed,
            self.precision,
            self.feeds,
        )

    def cell(
        self,
        threads: int,
        result: CellResult,
        *,
        artifact_sha256: str | None = None,
        modelinfo: ArtifactInfo | None = None,
        oversubscribed: bool = False,
        measured_map: MeasuredMap | None = None,
    ) -> Cell:
        """The result cell of this target measured with ``threads`` (its input size is what
        was fed, when the worker fed an image; ``oversubscribed``: more threads than cores).

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
            origin=self.origin,
            postprocess=self.postprocess,
            engine=self.engine,
            precision=self.precision,
            threads=threads,
            input_size=fed or self.input_size,
            claims=m.claims if m else None,
            artifact_sha256=artifact_sha256,
            modelinfo=modelinfo,
            measured_map=measured_map,
            result=result,
            provenance=self.provenance,
            oversubscribed=oversubscribed,
            image=self.image,
        )


def file_target(
    arg: str | Path,
    engine: str,
    input_size: tuple[int, int] | None = None,
    *,
    precision: str = "fp32",
) -> BenchTarget:
    """A target for a file or folder, benched as it is (a missing one is a failed target; see
    :func:`engine_file_target` for engines that need a conversion).

    >>> file_target("/nonexistent/model_dir", "paddle").failure.stage
    'prepare'
    """
    try:
        target = resolve_arg(str(arg), None)
    except ModelFileError as e:
        label = Target(str(arg), path=Path(arg)).label
        return BenchTarget(
            label,
            engine,
            failure=Failure("prepare", e.message, e.hint),
            origin="file",
            precision=precision,
        )
    assert target.path is not None
    if input_size is None and (engine == "paddle" or engine in CONVERTED_ENGINES):
        input_size = exported_size(target.path)
    return BenchTarget(
        target.label,
        engine,
        target.path,
        input_size=input_size,
        origin="file",
        precision=precision,
    )


def engine_file_target(
    store: Store,
    arg: str | Path,
    engine: str,
    input_size: tuple[int, int] | None = None,
    *,
    precision: str = "fp32",
    progress: Callable[[str], None] | None = None,
) -> BenchTarget:
    """:func:`file_target`, but a file that is not ``engine``'s own format (an ``.onnx`` file
    or a Paddle folder for OpenVINO, MNN or ncnn) is converted for it first
    (``picozoo.convert.convert(..., to=engine)``, cached as ``local-<name>``); a failure costs
    this target only.

    >>> engine_file_target(store, "/nonexistent.onnx", "mnn").failure.error  # doctest: +SKIP
    '/nonexistent.onnx: no such file or directory'
    """
    target = file_target(arg, engine, input_size, precision=precision)
    if target.path is None or engine not in CONVERTED_ENGINES:
        return target
    p = plan(Target(str(arg), path=target.path), engine, precision=precision)
    if p.origin == "file":
        return target
    missing = missing_engine_failure(engine)  # say so before converting
    if missing is not None:
        return dataclasses.replace(target, path=None, failure=missing)
    try:
        return _realized(store, target, p, input_size, progress)
    except Exception as e:  # a failed conversion costs this target only
        return dataclasses.replace(target, path=None, failure=_prepare_failure(e))


def model_target(
    store: Store,
    model: Model,
    engine: str,
    *,
    postprocess: bool,
    source: str = "auto",
    input_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
    precision: str = "fp32",
) -> BenchTarget:
    """Resolve a registry model to a usable artifact for ``engine`` (pulling or converting it;
    ``source`` picks the ONNX for ONNX Runtime, see :func:`picozoo.resolve.onnx_source`, and
    what was chosen is said through ``progress``; OpenVINO, MNN and ncnn bench the file
    ``picozoo.convert.convert(..., to=engine, precision=precision)`` makes); a failure costs
    this target only.

    >>> model_target(store, registry.get("picodet-s-416"), "paddle",
    ...              postprocess=False).provenance["artifact"]  # doctest: +SKIP
    'inference-nopp'
    """
    say = progress or (lambda _m: None)
    base = BenchTarget(model.id, engine, model=model, postprocess=postprocess, precision=precision)
    try:
        if engine in CONVERTED_ENGINES:
            missing = missing_engine_failure(engine)  # say so before pulling or converting
            if missing is not None:
                return dataclasses.replace(base, failure=missing, input_size=model.input_size)
        stored = None
        if engine == "onnxruntime" and source in ("auto", "converted"):
            stored = stored_onnx(store, model, postprocess=postprocess)
        p = plan(Target(model.id, model=model), engine, postprocess=postprocess, source=source,
                 precision=precision, verb="bench", stored=stored)  # fmt: skip
        if p.stored is not None:
            up = onnx_kind(p.postprocess)
            other = f"; --source upstream benches upstream's {up} ONNX" if model.has(up) else ""
            say(f"{model.id}: benching the ONNX picozoo converted from its {p.kind} tarball "
                f"({model.artifact(str(p.kind)).filename}), key {p.stored.key}, in the store: "
                f"{p.stored.path} (--source {source}{other})")  # fmt: skip
        elif p.fmt == "onnx" and p.origin == "upstream":
            say(f"{model.id}: benching upstream's {p.kind} ONNX (--source {source})")
        elif p.fmt == "onnx":
            because = (
                f": it has no upstream {onnx_kind(postprocess)} ONNX" if source == "auto" else ""
            )
            say(f"{model.id}: benching an ONNX converted from its {p.kind} tarball "
                f"(--source {source}{because})")  # fmt: skip
        base = dataclasses.replace(base, postprocess=p.postprocess)
        return _realized(store, base, p, input_size, progress)
    except PicozooError as e:
        why = e.hint
        upstream_ok = engine == "onnxruntime" and model.has(onnx_kind(postprocess))
        if upstream_ok and source == "converted" and "--source upstream" not in (why or ""):
            other = "bench upstream's ONNX: --source upstream (or auto)"
            why = f"{why}; or {other}" if why else other
        failure = Failure("prepare", e.message, why)
    except Exception as e:  # a converter/unpacker bug must cost one cell, not the whole run
        failure = _prepare_failure(e)
    return dataclasses.replace(base, failure=failure, input_size=input_size or model.input_size)


def _prepare_failure(e: Exception) -> Failure:
    """The failed ``prepare`` stage of a target whose pull or conversion raised ``e``.

    >>> _prepare_failure(ImportError("No module named 'MNN'")).error
    "cannot prepare the model: No module named 'MNN'"
    """
    if isinstance(e, PicozooError):
        return Failure("prepare", e.message, e.hint)
    if isinstance(e, ImportError):
        return Failure("prepare", f"cannot prepare the model: {e}", "install picozoo[all]")
    return Failure(
        "prepare",
        f"cannot prepare the model: {type(e).__name__}: {e}",
        "rerun with PICOZOO_DEBUG=1 and report the problem",
    )


def _realized(
    store: Store,
    base: BenchTarget,
    p: Plan,
    input_size: tuple[int, int] | None,
    progress: Callable[[str], None] | None,
) -> BenchTarget:
    """``base`` benched from the file :func:`picozoo.resolve.realize` makes ready for ``p``:
    upstream's artifact pulled, or the file ``picozoo.convert.convert`` makes (converted
    once, cached, parity-checked by the converter)."""
    from ..convert import convert

    if p.to is not None and p.to != "onnx" and progress is not None:
        progress(f"{base.label}: benching a {base.engine} {base.precision} model converted by "
                 "picozoo")  # fmt: skip
    ready = realize(p, store, convert=convert, progress=progress)
    size = input_size or ready.input_size or base.input_size
    return _ready(base, ready.path, size, ready.provenance, p.origin)


def _ready(
    base: BenchTarget,
    path: Path,
    size: tuple[int, int] | None,
    provenance: Mapping[str, Any],
    origin: str,
) -> BenchTarget:
    return dataclasses.replace(
        base, path=Path(path), input_size=size, provenance=dict(provenance), origin=origin
    )


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
    engines: Sequence[str | tuple[str, str]],
    *,
    store: Store,
    registry: Registry | None,
    postprocess: bool = False,
    source: str = "auto",
    input_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
    implicit: Collection[str] = (),
    notes: list[str] | None = None,
) -> list[BenchTarget]:
    """Targets for every (argument, engine); no arguments: every model in the store
    (``source``: see :func:`picozoo.resolve.onnx_source`). ``engines`` are names (fp32) or
    (engine, precision) pairs (see :func:`picozoo.bench.engines.plan_engines`); a file that an
    ``implicit`` engine (one ``--engine all`` brought in) cannot run is not benched on it, and
    ``notes`` says so.

    Unknown model ids raise (with suggestions); anything else that fails is kept as a target
    with ``failure`` set.

    >>> [t.engine for t in resolve_targets(["m.onnx"], ["onnxruntime", "paddle"], store=store,
    ...                                    registry=None)]  # doctest: +SKIP
    ['onnxruntime', 'paddle']
    """
    say = progress or (lambda _m: None)
    pairs = [(e, "fp32") if isinstance(e, str) else e for e in engines]
    named: list[Model | str] = [resolve_arg(a, registry, must_exist=False).model or a for a in args]
    if not args and registry is not None:
        named = list(cached_models(registry, store))
    targets = []
    for item in named:
        for engine, precision in pairs:
            if isinstance(item, str) and engine in implicit and not runs_file(engine, Path(item)):
                said = f"--engine all: {engine} skipped for {item}: it cannot run that file"
                if notes is not None and said not in notes:
                    notes.append(said)
                    say(f"note: {said}")
                continue
            if isinstance(item, str):
                targets.append(
                    engine_file_target(
                        store, item, engine, input_size, precision=precision, progress=progress
                    )
                )
                continue
            at = "" if precision == "fp32" else f" {precision}"
            say(f"preparing {item.id} for {engine}{at} ...")
            targets.append(
                model_target(
                    store,
                    item,
                    engine,
                    postprocess=postprocess,
                    source=source,
                    input_size=input_size,
                    progress=progress,
                    precision=precision,
                )
            )
    return targets
