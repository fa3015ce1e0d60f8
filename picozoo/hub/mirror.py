"""Mirrors: where to download an upstream URL from, and exporting the cache as a mirror.

A mirror replaces the scheme and host of an artifact URL and keeps its path, so
``https://paddledet.bj.bcebos.com/deploy/Inference/x.tar`` with mirror
``http://mirror.lan/pp`` is fetched from ``http://mirror.lan/pp/deploy/Inference/x.tar``.
``file://`` mirrors (and plain directory paths) work the same way.  Mirrors come from
``Settings.mirrors`` (``--mirror``/``$PICOZOO_MIRROR``, tried in order); with mirrors set,
the upstream origin is not contacted unless it is listed itself.

>>> source_urls("https://paddledet.bj.bcebos.com/a/b.tar", ["http://m.lan/pp", "/srv/zoo"])
['http://m.lan/pp/a/b.tar', 'file:///srv/zoo/a/b.tar']

A URL path is normalised first (``.`` and ``..`` segments resolved, percent-escapes decoded);
one that climbs above its host's root is refused, so no URL can leave a mirror's folder
(the registry refuses such URLs when it loads; this is the second line of defence).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ..atomic import atomic_write_text, copy_hashing, sha256_file
from ..errors import CorruptBlobError, RegistryError, UsageError

#: Hosts of source code (the registry's config links): a plain mirror does not replace them;
#: a mirror that holds their files says so with ``github.com=URL``.
CODE_HOSTS = ("github.com", "raw.githubusercontent.com")


def normalise_mirror(m: str) -> str:
    """A mirror as ``URL`` (it stands for the artifact host) or ``HOST=URL`` (it holds that
    host's files), with its URL normalised.

    >>> normalise_mirror("/srv/zoo/"), normalise_mirror("github.com=http://m.lan/gh/")
    ('file:///srv/zoo', 'github.com=http://m.lan/gh')
    """
    host, base = _split_host(m)
    scheme = urlsplit(base).scheme
    if scheme in ("http", "https", "file"):
        out = base.rstrip("/")
    elif not scheme or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        out = Path(base).expanduser().resolve().as_uri().rstrip("/")
    else:
        raise UsageError(
            f"unsupported mirror {m!r}",
            hint="use an http://, https:// or file:// URL or a directory path, optionally "
            "prefixed by the host it mirrors (github.com=URL)",
        )
    return f"{host}={out}" if host else out


def _split_host(m: str) -> tuple[str | None, str]:
    head, sep, tail = m.partition("=")
    if sep and head and "/" not in head and ":" not in head and "." in head:
        return head.lower(), tail
    return None, m


def url_path(url: str) -> str:
    """The path of ``url`` below its host's root: percent-decoded, with empty, ``.`` and ``..``
    segments resolved. A path that climbs above the root, holds a backslash or NUL, or names
    no file is a :class:`RegistryError` (exit 3).

    >>> url_path("https://h/a/./b/../c%20d.tar")
    'a/c d.tar'
    >>> url_path("https://h/pp/../../etc/passwd")
    Traceback (most recent call last):
    ...
    picozoo.errors.RegistryError: https://h/pp/../../etc/passwd: its path climbs above ...
    """
    raw = unquote(urlsplit(url).path)
    if "\\" in raw or "\x00" in raw:
        raise RegistryError(url, "its path holds a backslash or NUL character")
    out: list[str] = []
    for seg in raw.split("/"):
        if seg == "..":
            if not out:
                raise RegistryError(url, "its path climbs above the host's root ('..')")
            out.pop()
        elif seg not in ("", "."):
            out.append(seg)
    if not out:
        raise RegistryError(url, "its path names no file")
    return "/".join(out)


def normalise_url(url: str) -> str:
    """``url`` with its path normalised by :func:`url_path` (unchanged when already normal).

    >>> normalise_url("https://h/a/../b.tar"), normalise_url("https://h/x%20y.tar")
    ('https://h/b.tar', 'https://h/x%20y.tar')
    """
    parts = urlsplit(url)
    rel = url_path(url)
    if unquote(parts.path) == "/" + rel:
        return url
    return urlunsplit(parts._replace(path="/" + quote(rel)))


def source_urls(url: str, mirrors: Sequence[str]) -> list[str]:
    """Candidate download URLs of ``url``: each mirror that holds its host + the URL path, in
    order, else the URL itself. A plain mirror holds the artifact host (upstream's
    paddledet.bj.bcebos.com, or any other but the code hosts); GitHub links are fetched from
    GitHub unless a mirror declares ``github.com=URL``.

    >>> source_urls("https://github.com/P/D/blob/r/c.yml", ["http://m/pp"])
    ['https://raw.githubusercontent.com/P/D/r/c.yml']
    >>> source_urls("https://github.com/P/D/blob/r/c.yml", ["github.com=http://m/gh"])
    ['http://m/gh/P/D/blob/r/c.yml']
    """
    host = urlsplit(url).netloc.lower()
    parsed = [_split_host(normalise_mirror(m)) for m in mirrors]
    chosen = [base for h, base in parsed if h == host]
    if host not in CODE_HOSTS:
        chosen += [base for h, base in parsed if h is None]
    if not chosen:
        return [direct_url(normalise_url(url))]
    path = quote(url_path(url))
    return [f"{base}/{path}" for base in chosen]


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
        target = dest / url_path(e.url)
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
