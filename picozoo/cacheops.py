"""Cache maintenance: list, remove and prune.

>>> cache = Cache(Path("/tmp/zoo"))                      # doctest: +SKIP
>>> remove(cache, ["picodet-s-416"])                       # doctest: +SKIP
>>> prune(cache, dry_run=True)                             # doctest: +SKIP
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

from .cache import Cache
from .filelock import FileLock, LockTimeoutError, pid_alive

#: Files younger than this are never pruned (a concurrent pull may be about to reference them).
GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class Removal:
    path: Path
    reason: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "reason": self.reason, "size": self.size}


def list_rows(cache: Cache) -> list[dict[str, Any]]:
    """One row per cached artifact, for ``picozoo cache ls``."""
    rows = []
    for e in sorted(cache.entries(), key=lambda e: (e.model_id, e.kind)):
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
    return rows


def partial_downloads(cache: Cache) -> list[Path]:
    if not cache.downloads_dir.is_dir():
        return []
    return sorted(p for p in cache.downloads_dir.iterdir() if ".part" in p.name)


def remove(cache: Cache, model_ids: Iterable[str] | None) -> list[Removal]:
    """Remove the cached artifacts of ``model_ids`` (None: everything).  Pins in
    ``picozoo.lock`` are kept: they are knowledge, not cache."""
    wanted = None if model_ids is None else set(model_ids)
    out: list[Removal] = []
    for ref in list(cache.refs()):
        if wanted is not None and ref.get("model_id") not in wanted:
            continue
        try:
            with FileLock(cache.lock_path(ref["url"]), timeout=30):
                cache.drop_ref(ref["url"])
        except LockTimeoutError:
            continue
        out.append(
            Removal(cache.ref_path(ref["url"]), f"{ref.get('model_id')} {ref.get('kind')}", 0)
        )
    if wanted is None:
        for p in partial_downloads(cache):
            out.append(_rm(p, "partial download"))
    out += _collect_garbage(cache, grace=0.0)
    return out


def prune(cache: Cache, *, dry_run: bool = False, part_age_hours: float = 24.0) -> list[Removal]:
    """Remove stale partial downloads (unlocked and untouched for ``part_age_hours``), files
    no ref points to, crashed extractions and refs whose files are gone."""
    now = time.time()
    out: list[Removal] = []
    for p in partial_downloads(cache):
        if now - _mtime(p) < part_age_hours * 3600:
            continue
        if _part_in_use(cache, p):
            continue
        out.append(_rm(p, "stale partial download", dry_run))
    for ref in list(cache.refs()):
        if cache.entry_from_ref(ref) is None:
            if not dry_run:
                cache.drop_ref(ref["url"])
            out.append(Removal(cache.ref_path(ref["url"]), "ref to files that are gone", 0))
    out += _collect_garbage(cache, grace=GRACE_SECONDS, dry_run=dry_run)
    return out


def _collect_garbage(cache: Cache, *, grace: float, dry_run: bool = False) -> list[Removal]:
    now = time.time()
    blobs, dirs = cache.referenced()
    out = []
    if cache.blobs_dir.is_dir():
        for p in sorted(cache.blobs_dir.iterdir()):
            if p.name not in blobs and now - _mtime(p) >= grace:
                out.append(_rm(p, "unreferenced file", dry_run))
    if cache.unpacked_root.is_dir():
        for p in sorted(cache.unpacked_root.iterdir()):
            if p.name.startswith(".tmp-"):
                if now - _mtime(p) >= max(grace, 3600.0):
                    out.append(_rm(p, "leftover of an interrupted unpack", dry_run))
            elif p.name not in dirs and now - _mtime(p) >= grace:
                out.append(_rm(p, "unreferenced unpacked directory", dry_run))
    if cache.files_root.is_dir():
        for p in sorted(cache.files_root.iterdir()):
            if p.name not in dirs and now - _mtime(p) >= grace:
                out.append(_rm(p, "unreferenced named file", dry_run))
    return out


def _part_in_use(cache: Cache, part: Path) -> bool:
    name = part.name
    if name.endswith(".json"):
        name = name[: -len(".json")]
    _head, _, tail = name.rpartition(".part.")
    if tail.isdigit():  # a per-process part (locking unavailable): in use while its pid lives
        return pid_alive(int(tail))
    key = name[: -len(".part")] if name.endswith(".part") else name
    try:
        with FileLock(cache.locks_dir / f"{key}.lock", timeout=0):
            return False
    except LockTimeoutError:
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
