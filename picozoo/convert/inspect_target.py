"""What ``picozoo inspect MODEL`` reads: a path as it is; for a model id, its newest converted
ONNX in the store, else its cached inference folder.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.settings import Settings
>>> from picozoo.targets import resolve_arg
>>> store = Store(Settings(cache_dir=Path("/nonexistent")))
>>> resolve_inspect_target(store, resolve_arg("picodet-s-416", load_registry()), postprocess=True)
Traceback (most recent call last):
...
picozoo.errors.NotCachedError: picodet-s-416: nothing to inspect in the cache (convert it first: \
`picozoo convert picodet-s-416`, or pull its inference tarball)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import NotCachedError
from ..hub.store import Store
from ..paddle_dir import inference_kind
from ..targets import Target


def resolve_inspect_target(store: Store, target: Target, *, postprocess: bool) -> Path:
    """The file or folder to inspect for ``target`` (``postprocess`` selects which conversion
    or tarball of a model id: with or without NMS)."""
    if target.model is None:
        assert target.path is not None
        return target.path
    model = target.model
    kind, _ = inference_kind(model.kinds, postprocess=postprocess)
    for item in store.converted(model.id):
        if item.target == "onnx" and item.source_kind in (None, kind) and item.path.is_file():
            return item.path
    entry = store.lookup(model.artifact(kind)) if model.has(kind) else None
    if entry is not None:
        return entry.path
    flag = "" if postprocess else " --no-postprocess"
    raise NotCachedError(
        f"{model.id}: nothing to inspect in the cache",
        hint=f"convert it first: `picozoo convert {model.id}{flag}`, or pull its inference tarball",
    )
