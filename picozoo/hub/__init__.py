"""The download side of picozoo: the registry, the store (cache layout, refs, pins, mirrors,
offline mode), resumable verified downloads, safe unpacking, verification, the checkpoint
reader and store maintenance.

Public API (``__all__``, loaded lazily): :func:`load_registry` / :class:`Registry` (the
models and their artifacts), :class:`Store` (the cache: ``Store(Settings.from_env())``),
:func:`verify_cache`; pulling is :func:`picozoo.hub.pull.pull`.

Modules: :mod:`.registry`, :mod:`.store` (owns every path under the cache),
:mod:`.partial` (partial-download names), :mod:`.eval_result` (typed eval results),
:mod:`.pull` (pull/pin an artifact), :mod:`.download` (picks a downloader per URL scheme from
:mod:`.downloaders`), :mod:`.disk`, :mod:`.mirror`, :mod:`.unpack`, :mod:`.pins`,
:mod:`.mutex`, :mod:`.verify`, :mod:`.checkpoint`, :mod:`.maintenance`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import Artifact, Model, Registry, load_registry
    from .store import Store
    from .verify import verify_cache

#: The public API, loaded on first use (``picozoo list`` needs the registry, not the store).
_EXPORTS = {
    "Artifact": ".registry",
    "Model": ".registry",
    "Registry": ".registry",
    "load_registry": ".registry",
    "Store": ".store",
    "verify_cache": ".verify",
}

__all__ = ["Artifact", "Model", "Registry", "Store", "load_registry", "verify_cache"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
