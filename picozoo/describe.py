"""Everything picozoo knows about one model, for ``picozoo show``.

>>> from pathlib import Path
>>> from picozoo.registry import load_registry
>>> d = describe_model(load_registry(), "picodet-s-416", Path("/nonexistent-cache"))
>>> d["artifacts"][0]["kind"], d["artifacts"][0]["cached"]
('weights', False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .registry import Registry


def describe_model(registry: Registry, model_id: str, cache_dir: Path) -> dict[str, Any]:
    """A JSON-ready description: model, upstream claims and conditions, artifacts, conversions."""
    model = registry.get(model_id)
    from .cache import Cache
    from .lockfile import Lock, default_lock_path

    family = registry.family_of(model)
    cache = Cache(cache_dir)
    lock = Lock.load(default_lock_path(cache_dir))
    artifacts = []
    for a in model.artifacts:
        pinned = lock.get(a.url)
        entry = cache.lookup(a)
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
    c = model.claims
    return {
        "id": model.id,
        "name": model.name,
        "family": model.family,
        "family_title": family.title,
        "legacy": family.legacy,
        "reference_only": family.reference,
        "quantized": model.quantized,
        "base_model": model.base_model,
        "input_size": list(model.input_size),
        "claims": {
            "map": c.map,
            "map50": c.map50,
            "params_m": c.params_m,
            "flops_g": c.flops_g,
            "latency_ms": dict(c.latency_ms),
        },
        "latency_conditions": {k: family.latency.get(k) for k in c.latency_ms},
        "artifacts": artifacts,
        "converted": _converted(model.id, cache_dir),
    }


def _converted(model_id: str, cache_dir: Path) -> list[dict[str, Any]]:
    """Converted outputs recorded for this model (see ``picozoo convert``)."""
    try:
        from .convert import list_converted
    except ImportError:
        return []
    return [dict(item) for item in list_converted(model_id, cache_dir)]
