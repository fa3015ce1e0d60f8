"""The ``file://`` downloader: a local mirror or shared folder, copied while hashing.

>>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "x.bin").write_bytes(b"abc")
3
>>> r = copy_file((d / "x.bin").as_uri(), d / "x.part"); r.size, r.sha256[:8]
(3, 'ba7816bf')
>>> import shutil; shutil.rmtree(d)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from ...atomic import copy_hashing, open_nofollow
from ..content import HEAD_BYTES
from ..disk import disk_error
from ..partial import PartialDownload
from .base import CheckFn, DownloadResult, ProgressFn, SourceFailed


def copy_file(
    src: str,
    part: Path | None,
    label: str = "",
    progress: ProgressFn | None = None,
    check: CheckFn | None = None,
) -> DownloadResult:
    """Copy the file at the ``file://`` URL ``src`` into ``part`` (None: hash only)."""
    path = Path(url2pathname(unquote(urlsplit(src).path)))
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError as e:
        raise SourceFailed("no such file") from e
    except OSError as e:
        raise SourceFailed(e.strerror or str(e)) from e
    try:
        if check is not None:
            check(f.read(HEAD_BYTES), None)
            f.seek(0)
        total = os.fstat(f.fileno()).st_size
        out: IO[bytes] | None = None
        if part is not None:
            part.parent.mkdir(parents=True, exist_ok=True)
            PartialDownload(part).discard()
            out = open_nofollow(part, "wb")
        tick = (lambda n: progress(label, n, total)) if progress else None
        try:
            sha, done = copy_hashing(f, out, on_chunk=tick)
        finally:
            if out is not None:
                out.close()
    except OSError as e:
        err = disk_error(e, part or path) if part is not None else None
        if err is None:
            raise
        raise err from e
    finally:
        f.close()
    if done != total:
        raise SourceFailed(f"file changed while copying ({done} of {total} bytes)")
    return DownloadResult(sha, done, src, done, 0)
