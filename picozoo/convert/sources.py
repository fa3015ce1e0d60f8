"""What a conversion reads: the Paddle inference folder of a model id (its tarball pulled into
the store if missing) or a folder on disk -- or, for the engine formats, an ONNX file
(:class:`OnnxFile`, see :mod:`.onnx_input`) -- with its cache label and provenance facts.

>>> local_label(Path("/models/my picodet/"))
'local-my_picodet'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import UsageError
from ..hub.registry import INFERENCE_KINDS, Model, Registry
from ..hub.store import Store
from ..paddle_dir import PaddleModel, find_paddle_model
from ..resolve import Resolved, plan, realize
from ..targets import Target

Progress = Callable[[str], None]


@dataclass(frozen=True)
class OnnxFile:
    """An ONNX file as a conversion source, with the face of a
    :class:`~picozoo.paddle_dir.PaddleModel` (one file, no params).

    >>> OnnxFile(Path("/m/model.onnx")).directory
    PosixPath('/m')
    """

    model_file: Path
    params_file: None = None
    format: str = "onnx"

    @property
    def directory(self) -> Path:
        return self.model_file.parent

    def sha256(self) -> dict[str, str]:
        """sha256 of the file (``model`` and ``combined``; no ``params``)."""
        sha = sha256_file(self.model_file)
        return {"model": sha, "params": "", "combined": sha}


#: What a conversion reads: a Paddle model (ONNX, Lite) or an ONNX file (the engine formats).
ModelFiles = PaddleModel | OnnxFile


@dataclass(frozen=True)
class Source:
    """A model to convert: its files, cache label, origin facts and expected input size."""

    files: ModelFiles
    label: str
    origin: dict[str, Any]  #: model id/kind/url/artifact sha256, or the local path
    image_size: tuple[int, int] | None = None

    def provenance(self, shas: dict[str, str]) -> dict[str, Any]:
        """The ``source`` section of a provenance record (``shas``: ``files.sha256()``).

        >>> s = local_source(Path("picodet_dir"))  # doctest: +SKIP
        >>> s.provenance(s.files.sha256())["format"]  # doctest: +SKIP
        'legacy'
        """
        f = self.files
        return {
            **self.origin,
            "directory": str(f.directory),
            "model_file": f.model_file.name,
            "params_file": f.params_file.name if f.params_file else None,
            "format": f.format,
            "model_sha256": shas["model"],
            "params_sha256": shas["params"] or None,
            "sha256": shas["combined"],
        }


def local_label(path: Path) -> str:
    """Cache label of a folder on disk: ``local-<folder name>`` (the model file's folder).

    >>> local_label(Path("/models/picodet_s/"))
    'local-picodet_s'
    """
    p = Path(path).resolve()
    name = p.parent.name if p.is_file() else p.name
    return "local-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model")


def local_source(path: Path) -> Source:
    """The model in folder (or model file) ``path``.

    >>> local_source(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    picozoo.errors.ModelFileError: /nonexistent: no such file or directory \
(give a Paddle inference directory with model.pdmodel or model.json, and model.pdiparams)
    """
    files = find_paddle_model(path)
    return Source(files, local_label(path), {"path": str(Path(path).resolve())})


def resolve_source(
    store: Store, target: Target, *, postprocess: bool, progress: Progress | None = None
) -> Source:
    """The model a target names (:func:`picozoo.resolve.plan` in format ``paddle``): a folder
    as it is; a model id's inference tarball (``inference`` or ``inference-nopp`` after
    ``postprocess``) from the store, pulled (and said) if missing.

    >>> resolve_source(store, resolve_arg("picodet-s-416", registry), postprocess=False,
    ...                progress=print).label  # doctest: +SKIP
    picodet-s-416: pulling inference-nopp (picodet_s_416_coco_lcnet_non_postprocess.tar)
    'picodet-s-416'
    """
    if target.model is None:
        assert target.path is not None
        return local_source(target.path)
    model, say = target.model, progress or (lambda _m: None)
    p = plan(target, "paddle", postprocess=postprocess)
    if p.postprocess != postprocess:
        say(f"{model.id}: has no inference-nopp tarball, converting {p.kind} (with NMS)")
    pulled = realize(p, store, progress=say)
    return Source(
        find_paddle_model(pulled.path), model.id, upstream_origin(pulled), model.input_size
    )


def upstream_origin(pulled: Resolved) -> dict[str, Any]:
    """The origin facts of a provenance record for an artifact pulled from upstream.

    >>> upstream_origin(resolve(resolve_arg("picodet-s-416", registry), "paddle",
    ...                         store=store))["kind"]  # doctest: +SKIP
    'inference-nopp'
    """
    p = pulled.plan
    assert p.target.model is not None
    return {
        "model_id": p.target.model.id,
        "kind": p.kind,
        "url": pulled.provenance["url"],
        "artifact_sha256": pulled.provenance["sha256"],
        "postprocess": p.postprocess,
    }


def pulled_models(store: Store, registry: Registry) -> list[Model]:
    """Models the user has anything of in the store (a download of any kind, or a conversion)
    that have an inference tarball to convert, in registry order.

    >>> from picozoo.hub.registry import load_registry
    >>> from picozoo.settings import Settings
    >>> pulled_models(Store(Settings(cache_dir=Path("/nonexistent"))), load_registry())
    []
    """
    ids = store.models_with_entries()
    return [
        m for m in registry.models if m.id in ids and any(k in m.kinds for k in INFERENCE_KINDS)
    ]


def select_args(
    args: Sequence[str],
    store: Store,
    registry: Registry,
    *,
    postprocess: bool,
    progress: Progress | None = None,
) -> list[str]:
    """``args``, or (none given) the id of every model the user has pulled anything of: their
    inference tarball (``inference`` or ``inference-nopp`` after ``postprocess``) is pulled by
    the conversion when missing, so ``pull MODEL`` then ``convert --no-postprocess`` works.

    >>> select_args(["picodet-s-416", "./my_dir"], store, registry,
    ...             postprocess=True)  # doctest: +SKIP
    ['picodet-s-416', './my_dir']
    """
    if args:
        return list(args)
    found = [m.id for m in pulled_models(store, registry)]
    if not found:
        flag = "" if postprocess else " --no-postprocess"
        raise UsageError(
            f"no MODEL given and nothing is pulled yet ({store.root})",
            hint=f"name models (`picozoo convert picodet-s-416{flag}`) or pull one first "
            "(`picozoo pull picodet-s-416`)",
        )
    if progress is not None:
        kind = "inference" if postprocess else "inference-nopp"
        progress(
            f"no MODEL given: converting the {kind} tarball of every pulled model: "
            + ", ".join(found)
        )
    return found
