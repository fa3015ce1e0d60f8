"""What ``picozoo inspect MODEL`` reads: a path as it is; for a model id, what the store has
(its newest converted ONNX, upstream's ONNX, its inference folder). A model whose only runnable
artifact is upstream's ONNX (the 2021 legacy models: ``onnx-nopp`` only) is inspected from it,
pulled on demand; the others say how to get something to inspect.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.settings import Settings
>>> from picozoo.targets import resolve_arg
>>> store = Store(Settings(cache_dir=Path("/nonexistent")))
>>> resolve_inspect_target(store, resolve_arg("picodet-s-416", load_registry()), postprocess=True)
Traceback (most recent call last):
...
picozoo.errors.NotCachedError: picodet-s-416: nothing to inspect in the cache (convert it first: \
`picozoo convert picodet-s-416`, or pull upstream's ONNX: `picozoo pull picodet-s-416 --artifact \
onnx`)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import NotCachedError, UsageError
from ..hub.registry import INFERENCE_KINDS
from ..hub.store import Store
from ..paddle_dir import inference_kind
from ..targets import Target, onnx_kind


def resolve_inspect_target(
    store: Store,
    target: Target,
    *,
    postprocess: bool,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The file or folder to inspect for ``target`` (``postprocess`` selects which conversion,
    ONNX or tarball of a model id: with or without NMS). A model without inference tarballs is
    inspected from upstream's ONNX of that kind (else its other one, said through
    ``progress``), pulled if missing.

    >>> resolve_inspect_target(store, resolve_arg("picodet-legacy-s-320", registry),
    ...                        postprocess=False, progress=print)  # doctest: +SKIP
    picodet-legacy-s-320: pulling onnx-nopp (picodet_s_320_coco.onnx)
    PosixPath('.../picodet_s_320_coco.onnx')
    """
    if target.model is None:
        assert target.path is not None
        return target.path
    model, say = target.model, progress or (lambda _m: None)
    kind, _ = inference_kind(model.kinds, postprocess=postprocess)
    for item in store.converted(model.id):
        if item.target == "onnx" and item.source_kind in (None, kind) and item.path.is_file():
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
            from ..hub.pull import pull_announced

            if k != onnx:
                say(f"{model.id}: has no {onnx} artifact; inspecting its {k} instead")
            return pull_announced(store, model.artifact(k), say).path
    raise UsageError(
        f"{model.id} has no ONNX or Paddle inference model to inspect",
        hint=f"it has: {', '.join(model.kinds)}"
        if model.kinds
        else "it is a claims-only comparison row; `picozoo list --family picodet` shows models "
        "you can pull",
    )
