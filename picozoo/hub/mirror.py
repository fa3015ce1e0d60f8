"""Mirrors: where to download an upstream URL from, and exporting the cache as a mirror.

A mirror replaces the scheme and host of an artifact URL and keeps its path, so
``https://paddledet.bj.bcebos.com/deploy/Inference/x.tar`` with mirror
``http://mirror.lan/pp`` is fetched from ``http://mirror.lan/pp/deploy/Inference/x.tar``.
``file://`` mirrors (and plain directory paths) work the same way.  Mirrors come from
``Settings.mirrors`` (``--mirror``/``$PICOZOO_MIRROR``, tried in order); with mirrors set,
the upstream origin is not contacted unless it is listed itself.

>>> source_urls("https://paddledet.bj.bcebos.com/a/b.tar", ["http://m.lan/pp", "/srv/zoo"])
['http://m.lan/pp/a/b.tar', 'file:///srv/zoo/a/b.tar']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..atomic import atomic_write_text, copy_hashing, sha256_file
from ..errors import CorruptBlobError, UsageError


def normalise_mirror(m: str) -> str:
    scheme = urlsplit(m).scheme
    if scheme in ("http", "https", "file"):
        return m.rstrip("/")
    if not scheme or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return Path(m).expanduser().resolve().as_uri().rstrip("/")
    raise UsageError(
        f"unsupported mirror {m!r}",
        hint="use an http://, https:// or file:// URL, or a directory path",
    )


def source_urls(url: str, mirrors: Sequence[str]) -> list[str]:
    """Candidate download URLs of ``url``: each mirror + the URL path, or the URL itself."""
    path = urlsplit(url).path.lstrip("/")
    if not mirrors:
        return [direct_url(url)]
    return [f"{normalise_mirror(m)}/{quote(path)}" for m in mirrors]


def direct_url(url: str) -> str:
    """The URL to fetch from upstream: GitHub ``tree``/``blob`` pages become raw file URLs."""
    parts = urlsplit(url)
    if parts.netloc == "github.com":
        seg = parts.path.strip("/").split("/")
        if len(seg) > 4 and seg[2] in ("tree", "blob"):
            return "https://raw.githubusercontent.com/" + "/".join(seg[:2] + seg[3:])
    return url


def export(entries: Sequence[Any], dest: Path) -> list[dict[str, Any]]:
    """Copy cached blobs (``CacheEntry``) to ``dest/<url path>`` and write ``dest/SHA256SUMS``.

    Returns one row per exported file (path, url, sha256, size).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in entries:
        rel = urlsplit(e.url).path.lstrip("/")
        target = dest / rel
        if ".." in Path(rel).parts:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.is_file() and target.stat().st_size == e.size and _same(target, e)):
            tmp = target.with_name(f".{target.name}.picozoo-tmp")
            _copy_verified(e, tmp)
            os.replace(tmp, target)
        rows.append(
            {
                "model": e.model_id,
                "kind": e.kind,
                "path": str(target),
                "url": e.url,
                "sha256": e.sha256,
                "size": e.size,
            }
        )
    sums = dest / "SHA256SUMS"
    existing: dict[str, str] = {}
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition("  ")
            if name:
                existing[name] = sha
    for r in rows:
        existing[str(Path(r["path"]).relative_to(dest).as_posix())] = r["sha256"]
    atomic_write_text(sums, "".join(f"{s}  {n}\n" for n, s in sorted(existing.items())))
    return rows


def _copy_verified(entry: Any, tmp: Path) -> None:
    """Copy a blob, hashing as we go; a blob that no longer matches its hash is not exported."""
    with open(entry.blob, "rb") as src, open(tmp, "wb") as out:
        sha, _n = copy_hashing(src, out)
    if sha != entry.sha256:
        tmp.unlink()
        raise CorruptBlobError(
            f"{entry.model_id} {entry.kind}: cached file {entry.blob} no longer matches its "
            f"sha256 {entry.sha256} (got {sha})",
            hint=f"run `picozoo cache rm {entry.model_id}` and pull it again before exporting",
        )


def _same(target: Path, entry: Any) -> bool:
    return sha256_file(target) == entry.sha256
