"""Resumable, verified downloads into a ``.part`` file (or into a hash only).

``download(sources, part)`` tries each source URL in order (``http(s)://`` or ``file://``),
streams to ``part`` while computing sha256, resumes an interrupted ``part`` with ``Range`` +
``If-Range`` (ETag, else Last-Modified) so a changed file restarts from zero instead of being
spliced, retries connection errors, timeouts and 5xx with exponential back-off, and checks the
byte count against ``Content-Length``/``Content-Range``.  It never renames anything: the caller
moves the ``.part`` into place after its own checks (hash pins).

>>> r = download(["http://127.0.0.1:8000/deploy/x.tar"], Path("/tmp/x.part"))   # doctest: +SKIP
>>> r.sha256, r.size, r.transferred                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from ..atomic import CHUNK, atomic_write_text, copy_hashing
from ..errors import DownloadError
from ..settings import NetworkSettings

#: ``progress(label, bytes_done, bytes_total_or_None)``
ProgressFn = Callable[[str, int, "int | None"], None]

USER_AGENT = "picozoo (+https://github.com/PaddlePaddle/PaddleDetection model zoo client)"


class _SourceFailed(Exception):
    """This source cannot serve the file (4xx, missing file, retries exhausted)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class _Retry(Exception):
    """A transient failure: retry the same source after a back-off."""


@dataclass(frozen=True)
class DownloadResult:
    sha256: str
    size: int
    source: str
    transferred: int  # bytes received over the wire in this call (resumed bytes excluded)
    resumed_from: int


def download(
    sources: Sequence[str],
    part: Path | None,
    *,
    label: str = "",
    settings: NetworkSettings | None = None,
    progress: ProgressFn | None = None,
) -> DownloadResult:
    """Fetch the first source that works into ``part`` (``None``: hash only, keep no bytes)."""
    settings = settings or NetworkSettings()
    problems = []
    transient = False
    for src in sources:
        try:
            if urlsplit(src).scheme == "file":
                return _copy_file(src, part, label, progress)
            return _http(src, part, label, settings, progress)
        except _SourceFailed as e:
            problems.append(f"{_redact(src)}: {e}")
            transient = transient or e.transient
    if not transient:
        hint = "the file is not at any source: check --mirror/PICOZOO_MIRROR or the registry URL"
    elif part is not None and part.exists() and part.stat().st_size > 0:
        hint = (
            "check the network or --mirror/PICOZOO_MIRROR and re-run; the partial download "
            f"({part.stat().st_size} bytes) is kept and resumed"
        )
    else:
        hint = "check the network or --mirror/PICOZOO_MIRROR and re-run"
    raise DownloadError(
        f"could not download {label or sources[0]}: " + "; ".join(problems), hint=hint
    )


def meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def discard_part(part: Path) -> None:
    """Delete a ``.part`` file and its validators."""
    for p in (part, meta_path(part)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# -- file:// ---------------------------------------------------------------------------------
def _copy_file(
    src: str, part: Path | None, label: str, progress: ProgressFn | None
) -> DownloadResult:
    path = Path(url2pathname(unquote(urlsplit(src).path)))
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError as e:
        raise _SourceFailed("no such file") from e
    except OSError as e:
        raise _SourceFailed(e.strerror or str(e)) from e
    total = os.fstat(f.fileno()).st_size
    out: BinaryIO | None = None
    if part is not None:
        part.parent.mkdir(parents=True, exist_ok=True)
        discard_part(part)
        out = open(part, "wb")  # noqa: SIM115
    tick = (lambda n: progress(label, n, total)) if progress else None
    try:
        sha, done = copy_hashing(f, out, on_chunk=tick)
    finally:
        f.close()
        if out is not None:
            out.close()
    if done != total:
        raise _SourceFailed(f"file changed while copying ({done} of {total} bytes)")
    return DownloadResult(sha, done, src, done, 0)


# -- http(s) ---------------------------------------------------------------------------------
class PipelinedSha256:
    """sha256 computed in a helper thread, so hashing overlaps the socket reads and file
    writes (hashlib and socket I/O both release the GIL).  Same interface as hashlib's.

    >>> h = PipelinedSha256(); h.update(b"abc"); h.hexdigest()[:8]
    'ba7816bf'
    """

    def __init__(self) -> None:
        import queue
        import threading

        self._h = hashlib.sha256()
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._digest: str | None = None

    def _run(self) -> None:
        while True:
            chunk = self._q.get()
            if chunk is None:
                return
            self._h.update(chunk)

    def update(self, data: bytes) -> None:
        if self._digest is not None:
            raise ValueError("update() after hexdigest()")
        self._q.put(bytes(data))

    def hexdigest(self) -> str:
        if self._digest is None:
            self._q.put(None)
            self._thread.join()
            self._digest = self._h.hexdigest()
        return self._digest

    def close(self) -> None:
        """Stop the helper thread (the digest is then final)."""
        self.hexdigest()


@dataclass
class _State:
    """Where a download stands; mutated by each attempt so failures keep their progress."""

    url: str
    part: Path | None
    offset: int
    h: Any
    meta: dict[str, Any]
    got: int = 0  # bytes received over the wire
    total: int | None = None

    def restart(self) -> None:
        if self.part is not None:
            discard_part(self.part)
        self.h.close()
        self.offset, self.h, self.meta = 0, PipelinedSha256(), {"source": self.url}


def _http(
    url: str, part: Path | None, label: str, st: NetworkSettings, progress: ProgressFn | None
) -> DownloadResult:
    import requests
    import urllib3

    state = _State(url, part, 0, PipelinedSha256(), {"source": url})
    if part is not None:
        part.parent.mkdir(parents=True, exist_ok=True)
        old = _read_meta(part)
        if (
            part.exists()
            and old.get("source") == url
            and (old.get("etag") or old.get("last_modified"))
        ):
            state.meta = old
            state.offset = _hash_prefix(part, state.h)
        else:
            discard_part(part)
    resumed_from = state.offset
    failures = attempts = 0
    transient = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        _Retry,
        ConnectionError,
        TimeoutError,
    )
    try:
        with requests.Session() as session:
            session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            while True:
                attempts += 1
                before = state.offset
                try:
                    _attempt(session, state, st, label, progress)
                    if state.total is not None and state.offset != state.total:
                        raise _Retry(f"connection closed at byte {state.offset} of {state.total}")
                    if part is not None:
                        with contextlib.suppress(FileNotFoundError):
                            meta_path(part).unlink()
                    return DownloadResult(
                        state.h.hexdigest(), state.offset, url, state.got, resumed_from
                    )
                except transient as e:
                    failures = 0 if state.offset > before else failures + 1
                    if failures > st.retries or attempts >= st.max_attempts:
                        raise _SourceFailed(
                            f"gave up after {attempts} attempts ({_short(e)})", transient=True
                        ) from e
                    time.sleep(min(30.0, st.backoff * 2 ** max(0, failures - 1)))
    finally:
        state.h.close()  # stops the hashing thread; a no-op after hexdigest()


def _attempt(
    session: Any, s: _State, st: NetworkSettings, label: str, progress: ProgressFn | None
) -> None:
    headers = {}
    if s.offset > 0:
        headers["Range"] = f"bytes={s.offset}-"
        etag = s.meta.get("etag")
        validator = etag if etag and not str(etag).startswith("W/") else s.meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    with session.get(
        s.url,
        headers=headers,
        stream=True,
        timeout=(st.connect_timeout, st.read_timeout),
        allow_redirects=True,
    ) as r:
        code = r.status_code
        if code == 416 and s.offset > 0:
            m = re.match(r"bytes \*/(\d+)$", r.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == s.offset and "If-Range" in headers:
                s.total = s.offset  # validator matched and nothing is left: already complete
                return
            s.restart()  # our .part is not a prefix of this file: start over
            raise _Retry("range not satisfiable, restarting")
        if code >= 500 or code == 429:
            raise _Retry(f"HTTP {code}")
        if code >= 400:
            raise _SourceFailed(f"HTTP {code}")
        if code == 206 and s.offset > 0:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != s.offset:
                s.restart()
                raise _Retry("server answered a different range, restarting")
            s.total = int(m.group(3)) if m.group(3) != "*" else None
        else:
            if code != 200:
                raise _SourceFailed(f"unexpected HTTP {code}")
            if s.offset > 0:  # validator changed or no range support: the file starts over
                s.restart()
            cl = r.headers.get("Content-Length")
            s.total = int(cl) if cl and cl.isdigit() else None
            s.meta = {
                "source": s.url,
                "etag": r.headers.get("ETag"),
                "last_modified": r.headers.get("Last-Modified"),
                "total": s.total,
            }
            if s.part is not None:
                atomic_write_text(meta_path(s.part), json.dumps(s.meta))
        out = open(s.part, "ab") if s.part is not None else None  # noqa: SIM115
        try:
            for chunk in r.raw.stream(CHUNK, decode_content=False):
                if out is not None:
                    out.write(chunk)
                s.h.update(chunk)
                s.offset += len(chunk)
                s.got += len(chunk)
                if progress:
                    progress(label, s.offset, s.total)
        finally:
            if out is not None:
                out.close()


def _hash_prefix(part: Path, h: Any) -> int:
    with open(part, "rb") as f:
        return copy_hashing(f, None, hasher=h)[1]


def _read_meta(part: Path) -> dict[str, Any]:
    try:
        data = json.loads(meta_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 160 else text[:157] + "..."


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url
