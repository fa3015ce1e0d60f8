"""What a command argument names: a file or folder on disk, or a model id of the registry.

One rule for every command: an argument is a path when it exists, contains a path separator,
starts with ``.`` or ``~``, or ends with a model file suffix; otherwise it is a model id or
one of upstream's file stems (``picodet_s_416_coco_lcnet``; unknown names fail with
suggestions).

>>> is_path_arg("picodet-s-416"), is_path_arg("x.onnx"), is_path_arg("./dir")
(False, True, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError, UsageError
from .hub.registry import INFERENCE_KINDS, Model, Registry

#: Suffixes of model files picozoo reads.
MODEL_SUFFIXES = (".onnx", ".pdmodel", ".json", ".nb")


@dataclass(frozen=True)
class Target:
    """A resolved argument: exactly one of ``path`` and ``model`` is set. ``postprocess`` is
    what an upstream name asks for: False for a ``_non_postprocess`` stem, else None/True."""

    arg: str
    path: Path | None = None
    model: Model | None = None
    postprocess: bool | None = None

    @property
    def label(self) -> str:
        """A short name for tables: the model id, or the file/folder name."""
        if self.model is not None:
            return self.model.id
        assert self.path is not None
        if self.path.is_file() and self.path.suffix in (".pdmodel", ".json"):
            return self.path.parent.name
        return self.path.stem if self.path.suffix else self.path.name


def is_path_arg(arg: str) -> bool:
    """True when ``arg`` names a file or folder rather than a model id."""
    return (
        "/" in arg
        or os.sep in arg
        or arg.startswith((".", "~"))
        or arg.endswith(MODEL_SUFFIXES)
        or Path(arg).exists()
    )


def resolve_arg(arg: str, registry: Registry | None, *, must_exist: bool = True) -> Target:
    """Resolve one argument; a path that does not exist is a :class:`ModelFileError`.

    >>> from picozoo.hub.registry import load_registry
    >>> t = resolve_arg("picodet_s_416_coco_lcnet_non_postprocess", load_registry())
    >>> t.model.id, t.postprocess
    ('picodet-s-416', False)
    """
    if is_path_arg(arg) or registry is None:
        path = Path(arg).expanduser()
        if must_exist and not path.exists():
            raise ModelFileError(
                f"{arg}: no such file or directory",
                hint="give an existing model file/folder, or a model id (`picozoo list`)",
            )
        return Target(arg, path=path)
    model, postprocess = registry.resolve(arg)
    return Target(arg, model=model, postprocess=postprocess)


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
