"""Store maintenance: list, remove and prune downloads and converted outputs.

Removal takes the same per-artifact mutex as ``pull``, so a download in progress is never
pulled from under it.

>>> store = Store(Settings.from_env())                     # doctest: +SKIP
>>> remove(store, ["picodet-s-416"])                       # doctest: +SKIP
>>> prune(store, dry_run=True)                             # doctest: +SKIP
[Removal(path=PosixPath('/tmp/zoo/downloads/x.part'), reason='stale partial download', ...)]
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MutexTimeoutError
from .mutex import is_held
from .store import STAGING_PREFIX, Store

#: Files younger than this are never pruned (a concurrent pull may be about to reference them).
GRACE_SECONDS = 120.0
#: Staging folders younger than this may belong to a running unpack or conversion.
STAGING_GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class Removal:
    path: Path
    reason: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "reason": self.reason, "size": self.size}


def list_rows(store: Store) -> list[dict[str, Any]]:
    """One row per cached artifact and converted output, for ``picozoo cache ls``."""
    rows = []
    for e in sorted(store.entries(), key=lambda e: (e.model_id, e.kind)):
        rows.append(
            {
                "model": e.model_id,
                "kind": e.kind,
                "size": e.size,
                "size_h": human_size(e.size),
                "last_used": _iso(e.last_used),
                "verified": e.verified,
                "sha256": e.sha256,
                "path": str(e.path),
                "url": e.url,
            }
        )
    for c in store.converted():
        d = c.to_dict()
        rows.append(
            {
                "model": c.label,
                "kind": f"converted:{c.target}",
                "size": d["size"],
                "size_h": human_size(d["size"]),
                "last_used": c.created.replace("T", " ")[:16] or None,
                "verified": bool((d["parity"] or {}).get("passed")),
                "sha256": d["sha256"],
                "path": d["path"],
                "url": None,
            }
        )
    return rows


def partial_downloads(store: Store) -> list[Path]:
    if not store.downloads_dir.is_dir():
        return []
    return sorted(p for p in store.downloads_dir.iterdir() if ".part" in p.name)


def remove(store: Store, model_ids: Iterable[str] | None) -> list[Removal]:
    """Remove the cached artifacts and converted outputs of ``model_ids`` (None: everything).
    Pins are kept: they are knowledge, not cache. An artifact being downloaded right now is
    skipped (and reported with ``skipped`` in its reason)."""
    wanted = None if model_ids is None else set(model_ids)
    out: list[Removal] = []
    for ref in list(store.refs()):
        if wanted is not None and ref.model_id not in wanted:
            continue
        try:
            with store.mutex(ref.url, timeout=30):
                store.drop_ref(ref.url)
        except MutexTimeoutError:
            out.append(Removal(store.ref_path(ref.url), "skipped: in use by another process", 0))
            continue
        out.append(Removal(store.ref_path(ref.url), f"{ref.model_id} {ref.kind}", 0))
    for c in store.converted():
        if wanted is None or c.label in wanted:
            out.append(_rm(c.directory, f"{c.label} converted {c.target}"))
    if wanted is None:
        for p in partial_downloads(store):
            if _part_in_use(store, p):
                out.append(Removal(p, "skipped: download in progress", 0))
            else:
                out.append(_rm(p, "partial download"))
    out += _collect_garbage(store, grace=0.0)
    return out


def prune(store: Store, *, dry_run: bool = False, part_age_hours: float = 24.0) -> list[Removal]:
    """Remove stale partial downloads (unlocked and untouched for ``part_age_hours``), files
    no ref points to, abandoned staging folders (unpack, conversion) and refs whose files are
    gone."""
    now = time.time()
    out: list[Removal] = []
    for p in partial_downloads(store):
        if now - _mtime(p) < part_age_hours * 3600:
            continue
        if _part_in_use(store, p):
            continue
        out.append(_rm(p, "stale partial download", dry_run))
    for ref in list(store.refs()):
        if store.entry(ref) is None:
            if not dry_run:
                store.drop_ref(ref.url)
            out.append(Removal(store.ref_path(ref.url), "ref to files that are gone", 0))
    out += _collect_garbage(store, grace=GRACE_SECONDS, dry_run=dry_run)
    return out


def _collect_garbage(store: Store, *, grace: float, dry_run: bool = False) -> list[Removal]:
    now = time.time()
    blobs, dirs = store.referenced()
    out = []
    staging_age = max(grace, STAGING_GRACE_SECONDS)
    for parent in _staging_parents(store):
        for p in sorted(parent.glob(f"{STAGING_PREFIX}*")):
            if now - _mtime(p) >= staging_age:
                out.append(_rm(p, "leftover of an interrupted unpack or conversion", dry_run))
    if store.blobs_dir.is_dir():
        for p in sorted(store.blobs_dir.iterdir()):
            if p.name not in blobs and now - _mtime(p) >= grace:
                out.append(_rm(p, "unreferenced file", dry_run))
    for root, what in (
        (store.unpacked_root, "unpacked directory"),
        (store.files_root, "named file"),
    ):
        if root.is_dir():
            for p in sorted(root.iterdir()):
                stale = now - _mtime(p) >= grace
                if not p.name.startswith(STAGING_PREFIX) and p.name not in dirs and stale:
                    out.append(_rm(p, f"unreferenced {what}", dry_run))
    return out


def _staging_parents(store: Store) -> list[Path]:
    """Every folder where picozoo stages work before renaming it into place."""
    parents = [store.unpacked_root, store.converted_root]
    if store.converted_root.is_dir():
        parents += [p for p in store.converted_root.iterdir() if p.is_dir() and not p.is_symlink()]
    return [p for p in parents if p.is_dir()]


def _part_in_use(store: Store, part: Path) -> bool:
    name = part.name
    if name.endswith(".json"):
        name = name[: -len(".json")]
    _head, _, tail = name.rpartition(".part.")
    if tail.isdigit():  # a per-process part (locking unavailable): in use while its pid lives
        return _pid_alive(int(tail))
    key = name[: -len(".part")] if name.endswith(".part") else name
    return is_held(store.locks_dir / f"{key}.lock", mode=store.settings.locking)


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rm(path: Path, reason: str, dry_run: bool = False) -> Removal:
    size = _size(path)
    if not dry_run:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return Removal(path, reason, size)


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
