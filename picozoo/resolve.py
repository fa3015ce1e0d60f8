"""Which file or folder an argument (``MODEL|PATH``) runs as, for the engine or format wanted.

The one resolver of every command (bench, infer, eval, convert, inspect). :func:`plan` decides,
without touching the store, where the file comes from (``origin``):

* a path: the file or folder as it is (``file``); converted when the format cannot be read
  from it (an ``.onnx`` file or a Paddle folder for OpenVINO, MNN, ncnn; a Paddle folder as
  the ONNX an engine conversion reads, ``source="chain"``);
* a model id, ``paddle``: its inference tarball (``inference-nopp``, or ``inference`` with
  post-processing; models with only the post-processed one fall back to it), pulled
  (``upstream``);
* a model id, ``onnx``: upstream's ONNX or one converted from the tarball as ``source`` says
  (:func:`onnx_source`); a conversion already in the store (``stored``, found by
  :func:`stored_onnx`) is what ``auto`` and ``converted`` run, so a ``convert`` followed by a
  ``bench`` benches the file just made; ``source="chain"`` is what an engine conversion
  reads: converted from the tarball when there is one, else upstream's ONNX of either kind;
* a model id, ``openvino``/``mnn``/``ncnn``: the file ``picozoo.convert.convert(...,
  to=engine)`` makes (``converted``).

:func:`realize` pulls or converts what a plan says and :func:`resolve` does both. This module
sits below :mod:`picozoo.convert`, so a conversion is passed in (``convert``: a callable with
the signature of :func:`picozoo.convert.convert`). :func:`in_store` is ``inspect``'s rule:
what the store already has. The ``infer_cfg.yml`` beside a model is
:func:`picozoo.paddle_dir.config_beside`.

>>> from picozoo.hub.registry import load_registry
>>> reg = load_registry()
>>> p = plan(Target("picodet-s-416", model=reg.get("picodet-s-416")), "paddle")
>>> p.origin, p.kind, p.postprocess
('upstream', 'inference-nopp', False)
>>> p = plan(Target("picodet-s-416-quant", model=reg.get("picodet-s-416-quant")), "onnxruntime")
>>> p.origin, p.kind, p.to
('converted', 'inference-nopp', 'onnx')
>>> plan(Target("m.onnx", path=Path("m.onnx")), "openvino").to
'openvino'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ModelFileError, NotCachedError, UsageError
from .hub.registry import INFERENCE_KINDS, Model
from .paddle_dir import find_paddle_model, inference_kind
from .runtime.base import CONVERTED_ENGINES
from .targets import Target

if TYPE_CHECKING:
    from .hub.store import ConvertedOutput, Store
    from .provenance import Provenance

__all__ = [
    "FORMATS",
    "SOURCES",
    "Convert",
    "Plan",
    "Resolved",
    "check_runnable",
    "exported_size",
    "in_store",
    "onnx_kind",
    "onnx_source",
    "plan",
    "realize",
    "resolve",
    "stored_onnx",
]

#: What a command can ask for: a Paddle inference folder, an ONNX file, or an engine's format.
FORMATS = ("paddle", "onnx", *CONVERTED_ENGINES)
#: Engines named by the format they run (``onnxruntime`` runs ``onnx``).
_ENGINE_FORMAT = {"onnxruntime": "onnx"}

Progress = Callable[[str], None]


class Converted(Protocol):
    """What a conversion returns (:class:`picozoo.convert.ConversionResult`)."""

    @property
    def path(self) -> Path: ...
    @property
    def label(self) -> str: ...
    @property
    def provenance(self) -> Provenance: ...


class Convert(Protocol):
    """A conversion: :func:`picozoo.convert.convert` (or a partial of it)."""

    def __call__(
        self,
        store: Store,
        target: Target,
        /,
        *,
        to: str,
        postprocess: bool,
        precision: str | None,
        progress: Progress | None,
    ) -> Converted: ...


@dataclass(frozen=True)
class Plan:
    """Where the file of ``target`` in format ``fmt`` comes from: ``file`` (the path as it
    is), ``upstream`` (registry artifact ``kind``, pulled) or ``converted`` (``to`` the format,
    from the inference tarball ``kind`` of a model id, or from the path); ``postprocess``:
    whether that file has the model's NMS; ``stored``: the conversion already in the store
    that a ``converted`` plan runs as it is (None: convert, or take the cached identical one)."""

    target: Target
    fmt: str
    origin: str
    postprocess: bool
    kind: str | None = None
    to: str | None = None
    precision: str = "fp32"
    stored: ConvertedOutput | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return self.target.label


@dataclass(frozen=True)
class Resolved:
    """The file or folder a plan made ready, with where it came from.

    ``provenance``: upstream's artifact (``artifact``, ``url``, ``sha256``) or the conversion's
    record; ``cache_label``: the conversion's label in the store; ``input_size``: the
    exported input size (``infer_cfg.yml`` of a Paddle folder, else the registry's)."""

    plan: Plan
    path: Path
    provenance: Mapping[str, Any] = field(default_factory=dict)
    cache_label: str | None = None
    input_size: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        return self.plan.label


#: ``--source`` choices: which ONNX a model id is benched from on ONNX Runtime.
SOURCES = ("auto", "upstream", "converted")


def onnx_kind(postprocess: bool) -> str:
    """The registry kind of upstream's ONNX with or without post-processing.

    >>> onnx_kind(False), onnx_kind(True)
    ('onnx-nopp', 'onnx')
    """
    return "onnx" if postprocess else "onnx-nopp"


def onnx_source(model: Model, source: str, *, postprocess: bool) -> str:
    """``upstream`` or ``converted``: where ``model``'s ONNX comes from under ``--source``.

    ``auto`` is upstream's ONNX when the model has one of the requested post-processing kind,
    else a conversion of its inference tarball. An explicit choice the model cannot satisfy
    raises :class:`~picozoo.errors.UsageError` saying which choice would work.

    >>> from picozoo.hub.registry import load_registry
    >>> reg = load_registry()
    >>> onnx_source(reg.get("picodet-s-416"), "auto", postprocess=False)
    'upstream'
    >>> onnx_source(reg.get("picodet-s-416-quant"), "auto", postprocess=False)
    'converted'
    >>> onnx_source(reg.get("picodet-legacy-s-320"), "converted", postprocess=False)
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: picodet-legacy-s-320 has no Paddle inference tarball to convert \
(bench its upstream ONNX: --source upstream (or auto))
    """
    if source not in SOURCES:
        raise UsageError(f"unknown --source {source!r}", hint=f"use one of: {', '.join(SOURCES)}")
    kind, other = onnx_kind(postprocess), onnx_kind(not postprocess)
    has_upstream, has_tarball = model.has(kind), any(model.has(k) for k in INFERENCE_KINDS)
    if source == "auto":
        source = "upstream" if has_upstream else "converted"
    has = f"it has: {', '.join(model.kinds) or 'no artifacts'}"
    if source == "upstream" and not has_upstream:
        hint = "bench --source converted (or auto)" if has_tarball else has
        raise UsageError(f"{model.id} has no upstream {kind} ONNX", hint=hint)
    if source == "converted" and not has_tarball:
        if has_upstream:
            hint = "bench its upstream ONNX: --source upstream (or auto)"
        elif model.has(other):
            flag = "drop --postprocess" if postprocess else "add --postprocess"
            hint = f"bench its upstream {other} ONNX: {flag}"
        else:
            hint = has
        raise UsageError(f"{model.id} has no Paddle inference tarball to convert", hint=hint)
    return source


def _fmt(fmt: str) -> str:
    fmt = _ENGINE_FORMAT.get(fmt, fmt)
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    return fmt


def plan(
    target: Target,
    fmt: str,
    *,
    postprocess: bool = False,
    source: str = "auto",
    precision: str = "fp32",
    verb: str | None = None,
    stored: ConvertedOutput | None = None,
) -> Plan:
    """Decide where ``target``'s file in ``fmt`` (a format of :data:`FORMATS` or an engine name)
    comes from; see the module docstring. ``source``: ``auto``, ``upstream``, ``converted``
    (see :func:`onnx_source`) or ``chain``. ``stored``: a model id's ONNX conversion already
    in the store (:func:`stored_onnx`), which ``auto`` and ``converted`` run in format ``onnx``
    rather than upstream's ONNX or a new conversion. ``verb`` (``bench``, ``run``):
    a model id without the inference tarball ``paddle`` needs is a :class:`UsageError` saying
    what to ``verb`` instead (None: pulling it raises the registry's error).

    >>> from picozoo.hub.registry import load_registry
    >>> legacy = load_registry().get("picodet-legacy-s-320")
    >>> plan(Target(legacy.id, model=legacy), "onnx", source="chain").kind
    'onnx-nopp'
    >>> plan(Target(legacy.id, model=legacy), "paddle", verb="run")
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: picodet-legacy-s-320 has no Paddle inference tarball \
(run its upstream ONNX on ONNX Runtime: --engine onnxruntime)
    """
    fmt = _fmt(fmt)
    if target.model is None:
        return _plan_path(target, fmt, postprocess, source, precision)
    model = target.model
    tarball = any(model.has(k) for k in INFERENCE_KINDS)
    if fmt == "paddle":
        kind, with_pp = inference_kind(model.kinds, postprocess=postprocess)
        if verb is not None and not model.has(kind):
            raise UsageError(
                f"{model.id} has no Paddle inference tarball",
                hint=f"{verb} its upstream ONNX on ONNX Runtime: --engine onnxruntime"
                if model.has(onnx_kind(postprocess))
                else f"it has: {', '.join(model.kinds) or 'no artifacts'}",
            )
        return Plan(target, fmt, "upstream", with_pp, kind, precision=precision)
    if fmt in CONVERTED_ENGINES:
        with_pp = (
            inference_kind(model.kinds, postprocess=postprocess)[1] if tarball else postprocess
        )
        return Plan(target, fmt, "converted", with_pp, to=fmt, precision=precision)
    if source == "chain":
        if tarball:
            kind = inference_kind(model.kinds, postprocess=postprocess)[0]
            return Plan(target, fmt, "converted", postprocess, kind, "onnx", precision)
        wanted, other = onnx_kind(postprocess), onnx_kind(not postprocess)
        kind = wanted if model.has(wanted) else other
        if not model.has(kind):
            raise _nothing_to(model, "convert")
        return Plan(target, fmt, "upstream", kind == "onnx", kind, precision=precision)
    if stored is not None and source in ("auto", "converted"):
        made_from = stored.source_kind
        with_pp = made_from == "inference" if made_from in INFERENCE_KINDS else postprocess
        return Plan(target, fmt, "converted", with_pp, made_from, "onnx", precision, stored)
    if onnx_source(model, source, postprocess=postprocess) == "upstream":
        return Plan(target, fmt, "upstream", postprocess, onnx_kind(postprocess), None, precision)
    kind, with_pp = inference_kind(model.kinds, postprocess=postprocess)
    return Plan(target, fmt, "converted", with_pp, kind, "onnx", precision)


def _plan_path(target: Target, fmt: str, postprocess: bool, source: str, precision: str) -> Plan:
    path = target.path
    assert path is not None
    if fmt in CONVERTED_ENGINES and path.suffix not in CONVERTED_ENGINES[fmt]:
        return Plan(target, fmt, "converted", postprocess, to=fmt, precision=precision)
    if fmt == "onnx" and source == "chain" and not (path.is_file() and path.suffix == ".onnx"):
        return Plan(target, fmt, "converted", postprocess, to="onnx", precision=precision)
    return Plan(target, fmt, "file", postprocess, precision=precision)


def _nothing_to(model: Model, verb: str) -> UsageError:
    return UsageError(
        f"{model.id} has no ONNX or Paddle inference model to {verb}",
        hint=f"it has: {', '.join(model.kinds)}"
        if model.kinds
        else "it is a claims-only comparison row; `picozoo list --family picodet` shows "
        "models you can pull",
    )


def check_runnable(
    target: Target,
    verb: str,
    *,
    input_size: tuple[int, int] | None = None,
    models: Sequence[Model] = (),
) -> None:
    """Refuse ``target`` now, before anything is pulled or converted (a :class:`UsageError`,
    exit 2, with the reason): a path that does not exist; a model id with no ONNX or Paddle
    inference model to ``verb`` (a claims-only comparison row); an ``input_size`` other than a
    model id's (upstream's exports take a fixed size: it would be ignored). ``models``: the
    registry's, to suggest the same model trained at ``input_size``.

    >>> from picozoo.hub.registry import load_registry
    >>> reg = load_registry()
    >>> check_runnable(Target("/nonexistent.onnx", path=Path("/nonexistent.onnx")), "bench")
    Traceback (most recent call last):
    ...
    picozoo.errors.ModelFileError: /nonexistent.onnx: no such file or directory \
(give an existing model file/folder, or a model id (`picozoo list`))
    >>> check_runnable(Target("yolov5s-640", model=reg.get("yolov5s-640")), "bench")
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: yolov5s-640 has no ONNX or Paddle inference model to bench \
(it is a claims-only comparison row; `picozoo list --family picodet` shows models you can pull)
    >>> check_runnable(Target("picodet-s-416", model=reg.get("picodet-s-416")), "bench",
    ...                input_size=(320, 320), models=reg.models)
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: --input-size 320x320 cannot apply to picodet-s-416: its \
exports take a fixed 416x416 input (bench the one trained at 320x320: picodet-s-320)
    """
    if target.path is not None:
        if not target.path.exists():
            raise ModelFileError(
                f"{target.arg}: no such file or directory",
                hint="give an existing model file/folder, or a model id (`picozoo list`)",
            )
        return
    model = target.model
    if model is None:
        return
    if not any(model.has(k) for k in (*INFERENCE_KINDS, onnx_kind(True), onnx_kind(False))):
        raise _nothing_to(model, verb)
    if input_size is not None and tuple(input_size) != tuple(model.input_size):
        h, w = model.input_size
        same = [m.id for m in models if m.family == model.family and m.name == model.name
                and tuple(m.input_size) == tuple(input_size)]  # fmt: skip
        raise UsageError(
            f"--input-size {input_size[0]}x{input_size[1]} cannot apply to {model.id}: its "
            f"exports take a fixed {h}x{w} input",
            hint=f"{verb} the one trained at {input_size[0]}x{input_size[1]}: {same[0]}"
            if same
            else f"drop --input-size (it sizes model files with a dynamic input), or {verb} "
            "a model trained at that size (`picozoo list`)",
        )


def without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` (a mirror's URL as reports may show it).

    >>> without_credentials("https://me:secret@mirror.example/deploy/m.onnx")
    'https://mirror.example/deploy/m.onnx'
    >>> without_credentials("file:///tmp/demo-mirror/deploy/m.onnx")
    'file:///tmp/demo-mirror/deploy/m.onnx'
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def realize(
    p: Plan,
    store: Store,
    *,
    convert: Convert | None = None,
    progress: Progress | None = None,
) -> Resolved:
    """Make ``p``'s file ready: the path as it is, upstream's artifact pulled (and said) if
    missing, or ``convert(store, target, to=..., ...)`` run (cached by the converter).

    >>> realize(plan(Target("/m/x.onnx", path=Path("/m/x.onnx")), "onnx"), store).path
    ... # doctest: +SKIP
    PosixPath('/m/x.onnx')
    """
    target = p.target
    model = target.model
    if p.origin == "file":
        assert target.path is not None
        return Resolved(p, target.path, input_size=exported_size(target.path))
    if p.origin == "upstream":
        from .hub.pull import pull_announced

        assert model is not None and p.kind is not None
        artifact = model.artifact(p.kind)
        entry = pull_announced(store, artifact, progress)
        label = f"{model.id} {p.kind}"  # its infer_cfg.yml is checked: exit 5 if refused
        size = exported_size(entry.path, artifact=label) if p.kind in INFERENCE_KINDS else None
        provenance = {"artifact": p.kind, "url": artifact.url, "sha256": entry.sha256}
        ref = store.read_ref(artifact.url)
        if ref is not None and ref.source and ref.source != artifact.url:  # from a mirror
            provenance["fetched_from"] = without_credentials(ref.source)
        return Resolved(p, entry.path, provenance, input_size=size or model.input_size)
    assert p.to is not None
    if p.stored is not None:  # the conversion in the store, run as it is
        size = model.input_size if model is not None else None
        item = p.stored
        return Resolved(p, item.path, item.provenance.to_json(), item.label, size)
    if convert is None:
        raise UsageError(
            f"{p.label}: {p.fmt} needs a conversion, and no converter was given",
            hint="pass convert=picozoo.convert.convert",
        )
    res = convert(
        store,
        target,
        to=p.to,
        postprocess=p.postprocess,
        precision=None if p.to == "onnx" else p.precision,
        progress=progress,
    )
    size = model.input_size if model is not None else None
    if size is None and target.path is not None:
        size = exported_size(target.path)
    path = Path(res.path)
    if p.to == "lite":  # what runs here: the x86 .nb built (and proved) beside the ARM one
        path = _x86_nb(path, p.label)
    return Resolved(p, path, res.provenance.to_json(), res.label, size)


def _x86_nb(arm: Path, label: str) -> Path:
    """The ``model.x86.nb`` beside a converted ARM ``.nb``; a conversion made without one
    (``--opt-bin`` and no tool environment) cannot be run here."""
    x86 = arm.with_name("model.x86.nb")
    if not x86.is_file():
        raise UsageError(
            f"{label}: its Paddle-Lite conversion has no x86 .nb to run on this machine",
            hint="convert it with the managed Paddle-Lite toolchain (without --opt-bin), which "
            "builds model.x86.nb beside the ARM model.nb",
        )
    return x86


def resolve(
    target: Target,
    fmt: str,
    *,
    store: Store,
    postprocess: bool = False,
    source: str = "auto",
    precision: str = "fp32",
    convert: Convert | None = None,
    progress: Progress | None = None,
    verb: str | None = None,
) -> Resolved:
    """:func:`realize` of :func:`plan`: the file ``target`` runs as in ``fmt``.

    >>> from picozoo.convert import convert
    >>> resolve(resolve_arg("picodet-s-416", registry), "openvino", store=store,
    ...         convert=convert).path.name  # doctest: +SKIP
    'model.xml'
    """
    p = plan(target, fmt, postprocess=postprocess, source=source, precision=precision, verb=verb)
    return realize(p, store, convert=convert, progress=progress)


def stored_onnx(store: Store, model: Model, *, postprocess: bool) -> ConvertedOutput | None:
    """The newest intact ONNX that picozoo converted from ``model``'s inference tarball of the
    ``postprocess`` kind (the one :func:`plan` would convert: ``inference-nopp``, or
    ``inference``) and that is in the store, whatever its conversion options; None when there
    is none. A conversion of another tarball than the registry's (its URL, or its sha256
    where the registry pins one) is not taken, nor a damaged one.

    >>> from picozoo.hub.registry import load_registry
    >>> from picozoo.hub.store import Store
    >>> from picozoo.settings import Settings
    >>> empty = Store(Settings(cache_dir=Path("/nonexistent")))
    >>> stored_onnx(empty, load_registry().get("picodet-s-416"), postprocess=False) is None
    True
    """
    if not any(model.has(k) for k in INFERENCE_KINDS):
        return None
    kind = inference_kind(model.kinds, postprocess=postprocess)[0]
    if not model.has(kind):
        return None
    artifact = model.artifact(kind)
    for item in store.converted(model.id):
        src = item.provenance.source
        if item.target != "onnx" or src.kind != kind or src.model_id not in (None, model.id):
            continue
        if src.url != artifact.url:
            continue
        if artifact.sha256 and src.artifact_sha256 not in (None, artifact.sha256):
            continue
        if not store.converted_problems(item):
            return item
    return None


def exported_size(path: Path, *, artifact: str | None = None) -> tuple[int, int] | None:
    """The input size in a Paddle model's checked ``infer_cfg.yml`` (None: none, or not a
    Paddle model). A config picozoo refuses raises (``artifact``: the label of the pulled
    tarball ``path`` is, see :meth:`picozoo.paddle_dir.InferConfig.load`).

    >>> exported_size(Path("/nonexistent")) is None
    True
    """
    try:
        files = find_paddle_model(path)
    except ModelFileError:
        return None
    return files.config(artifact=artifact).input_size


def in_store(
    store: Store, target: Target, *, postprocess: bool, progress: Progress | None = None
) -> Path:
    """What ``inspect`` reads for ``target``: a path as it is; for a model id what the store
    has (its newest converted ONNX of that tarball kind, upstream's ONNX, its inference
    folder). A model without inference tarballs is read from upstream's ONNX of the
    ``postprocess`` kind (else its other one, said through ``progress``), pulled if missing;
    the others raise :class:`NotCachedError` saying how to get something.

    >>> in_store(store, resolve_arg("picodet-legacy-s-320", registry),
    ...          postprocess=False, progress=print)  # doctest: +SKIP
    picodet-legacy-s-320: pulling onnx-nopp (picodet_s_320_coco.onnx)
    PosixPath('.../picodet_s_320_coco.onnx')
    """
    if target.model is None:
        assert target.path is not None
        return target.path
    model, say = target.model, progress or (lambda _m: None)
    kind, _ = inference_kind(model.kinds, postprocess=postprocess)
    for item in store.converted(model.id):
        usable = item.target == "onnx" and item.source_kind in (None, kind)
        if usable and not store.converted_problems(item):  # a damaged one is not read
            return item.path
    onnx = onnx_kind(postprocess)
    for k in (onnx, kind):
        entry = store.lookup(model.artifact(k)) if model.has(k) else None
        if entry is not None:
            return entry.path
    if any(model.has(k) for k in INFERENCE_KINDS):
        flag = "" if postprocess else " --no-postprocess"
        pull_onnx = f", or pull upstream's ONNX: `picozoo pull {model.id} --artifact {onnx}`"
        raise NotCachedError(
            f"{model.id}: nothing to inspect in the cache",
            hint=f"convert it first: `picozoo convert {model.id}{flag}`"
            + (pull_onnx if model.has(onnx) else ", or pull its inference tarball"),
        )
    for k in (onnx, onnx_kind(not postprocess)):
        if model.has(k):
            if k != onnx:
                say(f"{model.id}: has no {onnx} artifact; inspecting its {k} instead")
            from .hub.pull import pull_announced

            return pull_announced(store, model.artifact(k), say).path
    raise _nothing_to(model, "inspect")
