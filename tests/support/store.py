"""Test shorthands over picozoo.hub: a store at a folder, and pull/pin by cache folder.

>>> store_at(Path("/tmp/c"), mirrors="http://127.0.0.1:9").mirrors
['http://127.0.0.1:9']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from picozoo.hub import pull as _pull
from picozoo.hub.store import Store
from picozoo.settings import Settings


def store_at(
    cache_dir: Path,
    *,
    mirrors: Any = None,
    offline: bool | None = None,
    lock_path: Path | None = None,
    locking: str | None = None,
) -> Store:
    """A store at ``cache_dir``; other settings come from the environment (like the CLI)."""
    settings = Settings.from_env(
        cache_dir=cache_dir, mirrors=mirrors, offline=offline, lock_path=lock_path, locking=locking
    )
    return Store(settings)


def pull(art: Any, *, cache_dir: Path, **kw: Any) -> Path:
    """Pull ``art`` into the store at ``cache_dir``; returns the usable path."""
    store_kw = {k: kw.pop(k) for k in ("mirrors", "offline", "lock_path", "locking") if k in kw}
    return _pull.pull(store_at(cache_dir, **store_kw), art, **kw).path


def pin_artifact(art: Any, *, cache_dir: Path, **kw: Any) -> Any:
    store_kw = {k: kw.pop(k) for k in ("mirrors", "offline", "lock_path") if k in kw}
    return _pull.pin_artifact(store_at(cache_dir, **store_kw), art, **kw)
