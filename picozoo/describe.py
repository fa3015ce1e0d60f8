"""Everything picozoo knows about one model, for ``picozoo show``.

>>> from pathlib import Path
>>> from picozoo.hub.registry import load_registry
>>> from picozoo.hub.store import Store
>>> from picozoo.settings import Settings
>>> store = Store(Settings(cache_dir=Path("/nonexistent-cache")))
>>> d = describe_model(load_registry(), "picodet-s-416", store)
>>> d["artifacts"][0]["kind"], d["artifacts"][0]["cached"]
('weights', False)
>>> d["aliases"][:2]
['picodet_s_416_coco_lcnet', 'picodet_s_416_coco_lcnet_fp16']
"""

from __future__ import annotations

from typing import Any

from .hub.registry import Registry
from .hub.store import Store


def describe_model(registry: Registry, model_id: str, store: Store) -> dict[str, Any]:
    """A JSON-ready description: model, its upstream names (aliases), upstream claims and
    conditions, artifacts, conversions; hashes pinned in the store's pins file (``--lock FILE``
    or the cache's). ``model_id`` may be an alias."""
    model = registry.get(model_id)
    family = registry.family_of(model)
    pins = store.pins()
    artifacts = []
    for a in model.artifacts:
        pinned = pins.get(a.url)
        entry = store.lookup(a)
        artifacts.append(
            {
                "kind": a.kind,
                "url": a.url,
                "size": a.size if a.size is not None else (pinned.size if pinned else None),
                "sha256": a.sha256 or (pinned.sha256 if pinned else None),
                "hash_source": "registry" if a.sha256 else ("lock" if pinned else None),
                "cached": entry is not None,
                "path": str(entry.path) if entry is not None else None,
                "verified": bool(entry and entry.verified),
            }
        )
    return {
        "id": model.id,
        "name": model.name,
        "aliases": registry.aliases_of(model.id),
        "family": model.family,
        "family_title": family.title,
        "legacy": family.legacy,
        "reference_only": family.reference,
        "quantized": model.quantized,
        "base_model": model.base_model,
        "input_size": list(model.input_size),
        "claims": model.claims.to_dict(),
        "latency_conditions": {k: family.latency.get(k) for k in model.claims.latency_ms},
        "artifacts": artifacts,
        "converted": [c.to_dict() for c in store.converted(model.id)],
    }
