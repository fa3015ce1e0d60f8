"""What ``picozoo inspect MODEL`` reads: :func:`picozoo.resolve.in_store` (a path as it is;
for a model id, what the store has). ``resolve_inspect_target`` is its old name, kept for
callers.

>>> from pathlib import Path
>>> from picozoo.hub.registry import load_registry
>>> from picozoo.hub.store import Store
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

from ..resolve import in_store

__all__ = ["resolve_inspect_target"]

resolve_inspect_target = in_store
