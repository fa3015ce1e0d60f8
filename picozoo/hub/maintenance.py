"""Store maintenance: list, remove and prune downloads, converted outputs and eval results.

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
from .partial import PartialDownload
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
    """One row per cached artifact, converted output and eval result, for ``picozoo cache ls``
    (an eval result's ``kind`` is ``eval:<engine>/<precision> <annotation file> x<images>``;
    its ``last_used`` is when it was written)."""
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
    for tool in tool_dirs(store):
        size = _size(tool)
        rows.append(
            {
                "model": "-",
                "kind": f"tool:{tool.name}",
                "size": size,
                "size_h": human_size(size),
                "last_used": _iso(_mtime(tool) or None),
                "verified": None,
                "sha256": None,
                "path": str(tool),
                "url": None,
            }
        )
    for path, r in store.eval_files():
        if r is None:
            continue
        size = _size(path)
        ann = Path(r.ann_file).name if r.ann_file else r.dataset[:12]
        rows.append(
            {
                "model": r.model,
                "kind": f"eval:{r.engine}/{r.precision} {ann} x{r.images}",
                "size": size,
                "size_h": human_size(size),
                "last_used": _iso(_mtime(path) or None),
                "verified": None,
                "sha256": r.model_sha256,
                "path": str(path),
                "url": None,
                "engine": r.engine,
                "precision": r.precision,
                "dataset": r.dataset,
                "ann_file": r.ann_file,
                "images": r.images,
                "ap": r.ap,
            }
        )
    return rows


def tool_dirs(store: Store) -> list[Path]:
    """The managed tool environments (``tools/paddlelite-2.12-cp37/``), finished ones only
    (a crashed build is a ``.tmp-*`` staging folder, removed by ``cache prune``)."""
    root = store.tools_root
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(STAGING_PREFIX)
    )


def partial_downloads(store: Store) -> list[Path]:
    """Files of partial downloads in ``downloads/`` (bytes, validators, leftovers of their
    atomic writes)."""
    return [p for p in store.partial_files() if ".part" in p.name]


def remove(store: Store, model_ids: Iterable[str] | None) -> list[Removal]:
    """Remove the cached artifacts, converted outputs and eval results of ``model_ids`` (None:
    everything, managed tool environments included).
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
    for folder in store.unreadable_converted():  # damaged: no readable provenance.json
        if wanted is None or folder.parent.name in wanted:
            out.append(_rm(folder, f"{folder.parent.name} converted (unreadable)"))
    for path, r in store.eval_files():
        if wanted is None or (r is not None and r.model in wanted):
            what = f"{r.model} eval {r.engine} {r.precision}" if r else "unreadable eval result"
            out.append(_rm(path, what))
    if wanted is None:
        for tool in tool_dirs(store):
            out.append(_rm(tool, f"tool environment {tool.name}"))
        for p in partial_downloads(store):
            if _part_in_use(store, p):
                out.append(Removal(p, "skipped: download in progress", 0))
            else:
                out.append(_rm(p, "partial download"))
    out += _collect_garbage(store, grace=0.0)
    return out


def prune(store: Store, *, dry_run: bool = False, part_age_hours: float = 24.0) -> list[Removal]:
    """Remove stale partial downloads (unlocked and untouched for ``part_age_hours``), files
    no ref points to, abandoned staging folders (unpack, conversion), refs whose files are
    gone, unreadable eval results and leftovers of interrupted eval-result writes."""
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
    out += _prune_evals(store, grace=GRACE_SECONDS, dry_run=dry_run)
    return out


def _prune_evals(store: Store, *, grace: float, dry_run: bool) -> list[Removal]:
    """Eval results that cannot be read (truncated by hand, a planted link) and the temp files
    of atomic writes a crash interrupted (``.<name>.json.*.tmp``)."""
    root = store.evals_root
    if not root.is_dir():
        return []
    now, out = time.time(), []
    for path, r in store.eval_files():
        if r is None and now - _mtime(path) >= grace:
            out.append(_rm(path, "unreadable eval result", dry_run))
    for p in sorted(root.glob(".*.tmp")):
        if now - _mtime(p) >= grace:
            out.append(_rm(p, "leftover of an interrupted eval-result write", dry_run))
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
    parents = [store.unpacked_root, store.converted_root, store.tools_root]
    if store.converted_root.is_dir():
        parents += [p for p in store.converted_root.iterdir() if p.is_dir() and not p.is_symlink()]
    return [p for p in parents if p.is_dir()]


def _part_in_use(store: Store, file: Path) -> bool:
    """Whether the download a file in ``downloads/`` belongs to is running: a per-process one
    (locking unavailable) while its process lives, the shared one while its mutex is held."""
    partial = PartialDownload.parse(file)
    if partial is None:  # the temp file of an interrupted atomic write: nobody owns it
        return False
    if partial.pid is not None:
        return _pid_alive(partial.pid)
    return is_held(store.key_mutex_path(partial.key), mode=store.settings.locking)


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
        return path.lstat().st_size  # a planted link: its own size, not its target's
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
