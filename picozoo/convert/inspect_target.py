"""Resolve the argument of ``picozoo inspect``: a path, or a model id in the cache.

>>> from picozoo.registry import load_registry
>>> resolve_inspect_target("picodet-s-416", load_registry(), Path("/nonexistent"),
...                        postprocess=True)
Traceback (most recent call last):
...
picozoo.errors.PicozooError: picodet-s-416: nothing to inspect in the cache (convert it first: \
`picozoo convert picodet-s-416`, or pull its inference tarball)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import PicozooError
from ..registry import Registry
from .run import is_path_target
from .store import list_converted


def resolve_inspect_target(
    target: str, registry: Registry, cache_dir: Path, *, postprocess: bool
) -> Path:
    """The file to inspect: ``target`` itself if it is a path; for a model id its newest
    converted ONNX (matching ``postprocess``), else its cached inference directory."""
    if is_path_target(target):
        return Path(target)
    model = registry.get(target)
    kind = "inference" if postprocess else "inference-nopp"
    for item in list_converted(model.id, cache_dir):
        if item.get("target") == "onnx" and item.get("source_kind") in (None, kind):
            path = Path(item["path"])
            if path.is_file():
                return path
    from ..cache import Cache

    if model.has(kind):
        entry = Cache(Path(cache_dir)).lookup(model.artifact(kind))
        if entry is not None:
            return entry.path
    flag = "" if postprocess else " --no-postprocess"
    raise PicozooError(
        f"{model.id}: nothing to inspect in the cache",
        hint=f"convert it first: `picozoo convert {model.id}{flag}`, or pull its inference tarball",
    )
