"""The content-addressed artifact cache.

Layout under the cache root (``$PICOZOO_CACHE`` or the platform cache dir)::

    picozoo.lock                   pinned sha256/size per URL (see picozoo.lockfile)
    blobs/sha256/<hex>             downloaded files, named by content, read-only, never rewritten
    unpacked/<hex16>/tree/...      an extracted tarball (``<hex16>`` = blob hash prefix)
    unpacked/<hex16>/manifest.json sha256 of every extracted file, recorded while extracting
    files/<hex16>/<file name>      a hard link to the blob under its upstream name (non-tarballs)
    refs/<urlkey>.json             URL -> blob (+ unpacked dir), verified flag, last use
    downloads/<urlkey>.part        resumable partial download (+ ``.part.json`` validators)
    locks/<urlkey>.lock            per-URL cross-process lock

>>> cache = Cache(Path("/tmp/zoo"))                                    # doctest: +SKIP
>>> entry = cache.lookup(registry.get("picodet-s-416").artifact("inference"))  # doctest: +SKIP
>>> entry.path                                                         # doctest: +SKIP
PosixPath('/tmp/zoo/unpacked/5f0c.../tree/picodet_s_416_coco_lcnet')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text


@dataclass(frozen=True)
class CacheEntry:
    """A cached artifact.  ``path`` is what users load: the unpacked directory for tarballs,
    the blob file otherwise."""

    url: str
    model_id: str
    kind: str
    path: Path
    sha256: str
    size: int
    verified: bool
    last_used: float | None
    blob: Path
    unpacked: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "kind": self.kind,
            "url": self.url,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "verified": self.verified,
            "last_used": self.last_used,
            "blob": str(self.blob),
            "unpacked": str(self.unpacked) if self.unpacked else None,
        }


def url_key(url: str) -> str:
    """A file-name-safe key for a URL: the file name plus a hash of the whole URL."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]
    return f"{safe}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


class Cache:
    """Paths and bookkeeping of one cache root.  All reads are cheap (no hashing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    # -- locations ----------------------------------------------------------------------------
    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def unpacked_root(self) -> Path:
        return self.root / "unpacked"

    @property
    def refs_dir(self) -> Path:
        return self.root / "refs"

    @property
    def downloads_dir(self) -> Path:
        return self.root / "downloads"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def files_root(self) -> Path:
        return self.root / "files"

    def named_path(self, sha256: str, filename: str) -> Path:
        """Where a non-tarball blob is visible under its upstream file name."""
        return self.files_root / sha256[:16] / filename

    def link_named(self, blob: Path, sha256: str, filename: str) -> Path:
        """Give ``blob`` its upstream file name (hard link; copy where links are unsupported)."""
        dest = self.named_path(sha256, filename)
        with contextlib.suppress(OSError):
            if os.path.samefile(dest, blob):
                return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(blob, tmp)
        except OSError:
            import shutil

            shutil.copyfile(blob, tmp)
            os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
        return dest

    def blob_path(self, sha256: str) -> Path:
        return self.blobs_dir / sha256

    def unpacked_dir(self, sha256: str) -> Path:
        return self.unpacked_root / sha256[:16]

    def ref_path(self, url: str) -> Path:
        return self.refs_dir / f"{url_key(url)}.json"

    def part_path(self, url: str) -> Path:
        return self.downloads_dir / f"{url_key(url)}.part"

    def lock_path(self, url: str) -> Path:
        return self.locks_dir / f"{url_key(url)}.lock"

    # -- refs ---------------------------------------------------------------------------------
    def read_ref(self, url: str) -> dict[str, Any] | None:
        return _read_json(self.ref_path(url))

    def write_ref(self, url: str, data: dict[str, Any]) -> None:
        atomic_write_text(self.ref_path(url), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def drop_ref(self, url: str) -> None:
        for p in (self.ref_path(url), self.used_path(url)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def refs(self) -> Iterator[dict[str, Any]]:
        """Every ref in the cache (order: by file name)."""
        if not self.refs_dir.is_dir():
            return
        for p in sorted(self.refs_dir.glob("*.json")):
            data = _read_json(p)
            if data and "url" in data and "sha256" in data:
                yield data

    def used_path(self, url: str) -> Path:
        return self.refs_dir / f"{url_key(url)}.used"

    def touch(self, url: str) -> None:
        """Record a use of ``url`` now: the mtime of ``refs/<key>.used`` (no ref rewrite, so
        it cannot race with a concurrent pull updating the ref)."""
        p = self.used_path(url)
        with contextlib.suppress(OSError):
            p.touch()
            os.utime(p)

    def last_used(self, url: str) -> float | None:
        try:
            return self.used_path(url).stat().st_mtime
        except OSError:
            return None

    def set_verified(self, url: str, verified: bool) -> None:
        ref = self.read_ref(url)
        if ref is not None and ref.get("verified") != verified:
            ref["verified"] = verified
            self.write_ref(url, ref)

    # -- lookups ------------------------------------------------------------------------------
    def entry_from_ref(self, ref: dict[str, Any]) -> CacheEntry | None:
        """The entry a ref describes, or None when its files are gone."""
        sha = str(ref["sha256"])
        blob = self.blob_path(sha)
        unpacked = self.root / ref["unpacked"] if ref.get("unpacked") else None
        path = self.root / ref["path"] if ref.get("path") else blob
        if not path.exists():
            return None
        if unpacked is None and not blob.is_file():
            return None
        return CacheEntry(
            url=str(ref["url"]),
            model_id=str(ref.get("model_id", "")),
            kind=str(ref.get("kind", "")),
            path=path,
            sha256=sha,
            size=int(ref.get("size", 0)),
            verified=bool(ref.get("verified", False)),
            last_used=self.last_used(str(ref["url"])) or ref.get("fetched_at"),
            blob=blob,
            unpacked=unpacked,
        )

    def lookup(self, artifact: Any) -> CacheEntry | None:
        """The cached entry of a registry :class:`~picozoo.registry.Artifact`, or None."""
        ref = self.read_ref(artifact.url)
        return self.entry_from_ref(ref) if ref else None

    def entries(self) -> list[CacheEntry]:
        out = []
        for ref in self.refs():
            e = self.entry_from_ref(ref)
            if e is not None:
                out.append(e)
        return out

    # -- blobs --------------------------------------------------------------------------------
    def store_blob(self, src: Path, sha256: str) -> Path:
        """Move a fully verified file into ``blobs/sha256/<sha256>``.

        Never overwrites: if the blob already exists ``src`` is discarded (same name = same
        bytes).  The blob is made read-only.
        """
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(src, 0o444)
        try:
            os.link(src, dest)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: rename, but only if nobody placed it meanwhile
            if not dest.exists():
                os.replace(src, dest)
                return dest
        with contextlib.suppress(FileNotFoundError):
            os.unlink(src)
        return dest

    def referenced(self) -> tuple[set[str], set[str]]:
        """(blob hashes, ``unpacked/`` + ``files/`` dir names) referenced by some ref."""
        blobs, dirs = set(), set()
        for ref in self.refs():
            blobs.add(str(ref["sha256"]))
            for key in ("unpacked", "path"):
                parts = Path(str(ref.get(key) or "")).parts
                if len(parts) >= 2 and parts[0] in ("unpacked", "files"):
                    dirs.add(parts[1])
        return blobs, dirs


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
