"""Resumable, verified downloads into a ``.part`` file (or into a hash only).

``download(sources, part)`` tries each source URL in order (``http(s)://`` or ``file://``),
streams to ``part`` while computing sha256, resumes an interrupted ``part`` with ``Range`` +
``If-Range`` (ETag, else Last-Modified) so a changed file restarts from zero instead of being
spliced, retries timeouts, dropped connections and 5xx with exponential back-off, and checks
the byte count against ``Content-Length``/``Content-Range``.  It never renames anything: the
caller moves the ``.part`` into place after its own checks (hash pins), then drops the resume
validators with :func:`discard_part`.

Hostile or broken servers are contained:

* a resumed reply whose ``Content-Range`` total differs from the first reply's restarts the
  file; a ``Content-Length`` that disagrees with ``Content-Range`` fails the attempt;
* ``Content-Encoding: gzip``/``deflate`` bodies (sent although we ask for ``identity``) are
  decoded, never stored compressed; other encodings are refused;
* ``check(head, content_type)`` sees the first bytes of each source's file and may refuse them
  (:mod:`picozoo.hub.content`: an HTML error page is not an ``.onnx``) before anything is kept;
* an attempt slower than ``min_speed`` bytes/s for ``min_speed_time`` seconds fails (so does one
  whose response headers take longer than the connect + read timeouts), and such slow attempts
  count as failures even when some bytes came;
* host-name resolution failures and refused connections are retried once, not as if transient;
* redirects are followed only to ``http(s)`` URLs on the host of a source or of ``origins``
  (never to ``file://``, never from https to http); loops and more than
  :data:`MAX_REDIRECTS` hops fail the source.

Retries are reported through the ``picozoo.hub.download`` logger at INFO level (the CLI prints
them on stderr; the library is quiet unless the caller configures logging).

>>> r = download(["http://127.0.0.1:8000/deploy/x.tar"], Path("/tmp/x.part"))   # doctest: +SKIP
>>> r.sha256, r.size, r.transferred                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

from ..atomic import CHUNK, atomic_write_text, copy_hashing, open_nofollow
from ..errors import DiskError, DownloadError, WrongContentError
from ..settings import NetworkSettings
from .content import HEAD_BYTES

#: ``progress(label, bytes_done, bytes_total_or_None)``
ProgressFn = Callable[[str, int, "int | None"], None]
#: ``check(first_bytes, content_type_or_None)``; raises WrongContentError to refuse a source
CheckFn = Callable[[bytes, "str | None"], None]

USER_AGENT = "picozoo (+https://github.com/PaddlePaddle/PaddleDetection model zoo client)"
MAX_REDIRECTS = 10
_REDIRECT_CODES = (301, 302, 303, 307, 308)
log = logging.getLogger(__name__)

# Why a source failed: decides the hint of the final error.
MISSING, NETWORK, REFUSED = "missing", "network", "refused"


class _SourceFailed(Exception):
    """This source cannot serve the file (4xx, missing file, retries exhausted, policy)."""

    def __init__(self, message: str, kind: str = MISSING) -> None:
        super().__init__(message)
        self.kind = kind


class _Retry(Exception):
    """A transient failure: retry the same source after a back-off."""


class _TooSlow(_Retry):
    """The low-speed limit tripped: counts as a failure even though some bytes came."""


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
    check: CheckFn | None = None,
    origins: Sequence[str] = (),
) -> DownloadResult:
    """Fetch the first source that works into ``part`` (``None``: hash only, keep no bytes).

    ``check`` may refuse a source's bytes (see the module docs); redirects may go to the host
    of any source or of ``origins``. Raises :class:`DownloadError` when every source failed,
    :class:`WrongContentError` when one served the wrong kind of content, :class:`DiskError`
    when ``part`` cannot be written.
    """
    settings = settings or NetworkSettings()
    allowed = _hosts([*sources, *origins])
    problems: list[str] = []
    kinds: set[str] = set()
    wrong = False
    for i, src in enumerate(sources):
        try:
            if src.lower().startswith("file:"):
                return _copy_file(src, part, label, progress, check)
            if _host_key(src) is None:
                raise _SourceFailed("not a usable http(s):// or file:// URL", kind=REFUSED)
            return _http(src, part, label, settings, progress, check, allowed)
        except _SourceFailed as e:
            problems.append(f"{_redact(src)}: {e}")
            kinds.add(e.kind)
        except WrongContentError as e:
            if part is not None:
                discard_part(part)
            problems.append(f"{_redact(src)}: {e.message}")
            wrong = True
        if i + 1 < len(sources):
            log.info("%s: %s; trying the next source", label or src, problems[-1])
    what = label or sources[0]
    if wrong:
        raise WrongContentError(
            f"refusing {what}: " + "; ".join(problems),
            hint="the server answered with something else than the file (an error page?); "
            "nothing was cached or pinned: fix or drop that --mirror/PICOZOO_MIRROR",
        )
    if kinds == {MISSING}:
        hint = "the file is not at any source: check --mirror/PICOZOO_MIRROR or the registry URL"
    elif NETWORK in kinds and part is not None and part.exists() and part.stat().st_size > 0:
        hint = (
            "check the network or --mirror/PICOZOO_MIRROR and re-run; the partial download "
            f"({part.stat().st_size} bytes) is kept and resumed"
        )
    else:
        hint = "check the network or --mirror/PICOZOO_MIRROR and re-run"
    raise DownloadError(f"could not download {what}: " + "; ".join(problems), hint=hint)


def meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def discard_part(part: Path) -> None:
    """Delete a ``.part`` file and its validators."""
    for p in (part, meta_path(part)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def disk_error(
    e: OSError, path: Path, *, need: int | None = None, kept: str = ""
) -> DiskError | None:
    """The :class:`DiskError` for a full or read-only disk (``None`` for any other error):
    one line naming the path (``e.filename``, else ``path``) and what to free or change.

    >>> disk_error(OSError(errno.EROFS, "Read-only file system"), Path("/c")).message
    'cannot write to /c: Read-only file system'
    """
    where = Path(e.filename) if isinstance(e.filename, str) else path
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        from .maintenance import human_size

        free = None
        with contextlib.suppress(OSError):
            free = _disk_free(where)
        amount = f"{human_size(need)} or more" if need else "space"
        return DiskError(
            f"no space left on the disk holding {where}"
            + (f" ({human_size(free)} free)" if free is not None else ""),
            hint=f"free {amount} there (`picozoo cache prune` drops unused files) or use "
            "--cache DIR/PICOZOO_CACHE on a larger disk" + (f"; {kept}" if kept else ""),
        )
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DiskError(
            f"cannot write to {where}: {e.strerror or 'read-only'}",
            hint="make it writable, or use --cache DIR/PICOZOO_CACHE (and --lock FILE) on a "
            "writable disk",
        )
    return None


def _disk_free(path: Path) -> int:
    import shutil

    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


# -- file:// ---------------------------------------------------------------------------------
def _copy_file(
    src: str, part: Path | None, label: str, progress: ProgressFn | None, check: CheckFn | None
) -> DownloadResult:
    path = Path(url2pathname(unquote(urlsplit(src).path)))
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError as e:
        raise _SourceFailed("no such file") from e
    except OSError as e:
        raise _SourceFailed(e.strerror or str(e)) from e
    try:
        if check is not None:
            check(f.read(HEAD_BYTES), None)
            f.seek(0)
        total = os.fstat(f.fileno()).st_size
        out: IO[bytes] | None = None
        if part is not None:
            part.parent.mkdir(parents=True, exist_ok=True)
            discard_part(part)
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
    head: bytearray = field(default_factory=bytearray)  # the file's first HEAD_BYTES bytes
    checked: bool = False  # the head passed the content check
    content_type: str | None = None
    encoded: bool = False  # the server compresses the body: ranges cannot be resumed
    at: str = ""  # the URL of the current request (after redirects)

    def restart(self) -> None:
        if self.part is not None:
            discard_part(self.part)
        self.h.close()
        self.offset, self.h, self.meta = 0, PipelinedSha256(), {"source": self.url}
        self.head, self.checked, self.total = bytearray(), False, None

    def add(self, chunk: bytes, out: IO[bytes] | None, check: CheckFn | None) -> None:
        """Keep ``chunk`` (the next bytes of the file) and run the content check once the
        head is complete."""
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
            if len(self.head) >= HEAD_BYTES:
                self.run_check(check)
        if out is not None:
            out.write(chunk)
        self.h.update(chunk)
        self.offset += len(chunk)

    def run_check(self, check: CheckFn | None) -> None:
        if check is not None and not self.checked:
            check(bytes(self.head), self.content_type)
        self.checked = True


def _http(
    url: str,
    part: Path | None,
    label: str,
    st: NetworkSettings,
    progress: ProgressFn | None,
    check: CheckFn | None,
    allowed: set[tuple[str, int]],
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
            with open_nofollow(part, "rb") as f:
                state.head = bytearray(f.read(HEAD_BYTES))
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
        with _watched_session() as (session, watchdog):
            while True:
                attempts += 1
                before = state.offset
                try:
                    _attempt(session, watchdog, state, st, label, progress, check, allowed)
                    if state.total is not None and state.offset != state.total:
                        raise _Retry(f"connection closed at byte {state.offset} of {state.total}")
                    state.run_check(check)
                    return DownloadResult(
                        state.h.hexdigest(), state.offset, url, state.got, resumed_from
                    )
                except transient as e:
                    why, unreachable = _reason(e, state, st)
                    progressed = state.offset > before and not isinstance(e, _TooSlow)
                    failures = 0 if progressed else failures + 1
                    limit = min(1, st.retries) if unreachable else st.retries
                    if failures > limit or attempts >= st.max_attempts:
                        tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
                        raise _SourceFailed(f"gave up after {tries}: {why}", kind=NETWORK) from e
                    delay = min(30.0, st.backoff * 2 ** max(0, failures - 1))
                    log.info(
                        "%s: %s; retrying in %.1f s (attempt %d)",
                        label or _redact(url),
                        why,
                        delay,
                        attempts + 1,
                    )
                    time.sleep(delay)
                except requests.RequestException as e:  # a URL requests cannot use at all
                    raise _SourceFailed(_reason(e, state, st)[0], kind=REFUSED) from e
                except OSError as e:  # writing the .part: a full or read-only disk
                    need = state.total - state.offset if state.total is not None else None
                    kept = "the partial download is kept and resumed" if state.offset else ""
                    err = disk_error(e, part or Path(url), need=need, kept=kept)
                    if err is None:
                        raise
                    raise err from e
    finally:
        state.h.close()  # stops the hashing thread; a no-op after hexdigest()


def _attempt(
    session: Any,
    watchdog: _Watchdog,
    s: _State,
    st: NetworkSettings,
    label: str,
    progress: ProgressFn | None,
    check: CheckFn | None,
    allowed: set[tuple[str, int]],
) -> None:
    if s.encoded and s.offset > 0:  # a compressed body cannot be resumed byte-wise
        s.restart()
    headers = {}
    if s.offset > 0:
        headers["Range"] = f"bytes={s.offset}-"
        etag = s.meta.get("etag")
        validator = etag if etag and not str(etag).startswith("W/") else s.meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    with _get(session, watchdog, s, headers, st, allowed) as r:
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
        s.content_type = r.headers.get("Content-Type")
        decoder = _decoder(r.headers.get("Content-Encoding", ""))
        if code == 206 and s.offset > 0:
            if decoder is not None:
                s.restart()
                s.encoded = True
                raise _Retry("the server compressed a resumed reply, restarting")
            _check_range(s, r.headers)
        else:
            if code != 200:
                raise _SourceFailed(f"unexpected HTTP {code}")
            if s.offset > 0:  # validator changed or no range support: the file starts over
                s.restart()
            cl = r.headers.get("Content-Length")
            s.total = int(cl) if cl and cl.isdigit() and decoder is None else None
            s.encoded = decoder is not None
            s.meta = {
                "source": s.url,
                "etag": None if s.encoded else r.headers.get("ETag"),
                "last_modified": None if s.encoded else r.headers.get("Last-Modified"),
                "total": s.total,
            }
            if s.part is not None:
                atomic_write_text(meta_path(s.part), json.dumps(s.meta))
        _stream(r, s, st, label, progress, check, decoder)


def _check_range(s: _State, headers: Any) -> None:
    """Validate a 206 reply to ``Range: bytes=<offset>-`` before using a byte of it."""
    m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)$", headers.get("Content-Range", "").strip())
    if not m or int(m.group(1)) != s.offset:
        s.restart()
        raise _Retry("server answered a different range, restarting")
    start, end = int(m.group(1)), int(m.group(2))
    total = int(m.group(3)) if m.group(3) != "*" else None
    first = s.meta.get("total")
    if total is not None and isinstance(first, int) and total != first:
        s.restart()
        raise _Retry(f"file size changed from {first} to {total} bytes, restarting")
    if end < start or (total is not None and end >= total):
        s.restart()
        raise _Retry(f"inconsistent Content-Range {m.group(0)!r}, restarting")
    cl = headers.get("Content-Length")
    if cl is not None and cl.strip() != str(end - start + 1):
        raise _Retry(f"Content-Length {cl} disagrees with Content-Range {m.group(0)!r}")
    s.total = total if total is not None else first if isinstance(first, int) else None


def _stream(
    r: Any,
    s: _State,
    st: NetworkSettings,
    label: str,
    progress: ProgressFn | None,
    check: CheckFn | None,
    decoder: Any,
) -> None:
    """Append the body to the ``.part`` (decoded if compressed); fail the attempt when it is
    slower than ``st.min_speed`` for ``st.min_speed_time``."""
    read = getattr(r.raw, "read1", None)
    if read is None:  # urllib3 < 2.3: a read blocks until the amount came, so keep it small

        def read(n: int, decode_content: bool) -> bytes:
            return bytes(r.raw.read(min(n, 16384), decode_content=decode_content))

    window_start, window_bytes = time.monotonic(), 0
    out = open_nofollow(s.part, "ab") if s.part is not None else None
    try:
        while True:
            data = read(CHUNK, decode_content=False)
            if not data:
                break
            s.got += len(data)
            for chunk in _inflate(decoder, data) if decoder is not None else (data,):
                s.add(chunk, out, check)
            if progress:
                progress(label, s.offset, s.total)
            window_bytes += len(data)
            elapsed = time.monotonic() - window_start
            if st.min_speed > 0 and elapsed >= st.min_speed_time:
                if window_bytes < st.min_speed * elapsed:
                    raise _TooSlow(
                        f"slower than {st.min_speed:g} bytes/s for {elapsed:.0f} s "
                        f"({window_bytes / elapsed:.0f} bytes/s; PICOZOO_MIN_SPEED, "
                        "PICOZOO_MIN_SPEED_TIME)"
                    )
                window_start, window_bytes = time.monotonic(), 0
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                s.add(tail, out, check)
            if not decoder.eof:
                raise _Retry("the compressed body ended early")
    finally:
        if out is not None:
            out.close()


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for a gzip/deflate ``Content-Encoding``; None for identity."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    raise _SourceFailed(f"unsupported Content-Encoding {encoding!r}", kind=REFUSED)


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    """Decompress ``data`` in bounded pieces (a small body may inflate to a huge one)."""
    try:
        while data:
            piece = decoder.decompress(data, CHUNK)
            if piece:
                yield piece
            data = decoder.unconsumed_tail
    except zlib.error as e:
        raise _SourceFailed(f"the compressed body is corrupt ({e})", kind=REFUSED) from e


# -- requests, redirects and the header deadline -----------------------------------------------
class _Watchdog:
    """Closes the session's sockets when response headers take too long: a server dripping
    header bytes would otherwise reset the read timeout forever."""

    def __init__(self) -> None:
        self.conns: list[Any] = []
        self.tripped = False

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        self.tripped = False
        timer = threading.Timer(seconds, self._trip)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _trip(self) -> None:
        self.tripped = True
        for conn in list(self.conns):
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def _watched_session() -> Iterator[tuple[Any, _Watchdog]]:
    """A requests session whose connections the returned :class:`_Watchdog` can cut."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    watchdog = _Watchdog()

    class Conn(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.conns.append(self)

    class SConn(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watchdog.conns.append(self)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class SPool(HTTPSConnectionPool):
        ConnectionCls = SConn

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SPool}

    with requests.Session() as session:
        session.mount("http://", Adapter())
        session.mount("https://", Adapter())
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        yield session, watchdog


def _get(
    session: Any,
    watchdog: _Watchdog,
    s: _State,
    headers: dict[str, str],
    st: NetworkSettings,
    allowed: set[tuple[str, int]],
) -> Any:
    """GET ``s.url`` (streamed), following redirects only where :func:`_redirect_ok` allows."""
    import requests

    s.at = s.url
    chain = [s.url]
    for _ in range(MAX_REDIRECTS + 1):
        limit = st.connect_timeout + st.read_timeout
        late = f"no complete response headers within {limit:g} s"
        try:
            with watchdog.deadline(limit):
                r = session.get(
                    s.at,
                    headers=headers,
                    stream=True,
                    timeout=(st.connect_timeout, st.read_timeout),
                    allow_redirects=False,
                )
        except requests.RequestException as e:
            if watchdog.tripped:
                raise _Retry(late) from e
            raise
        if watchdog.tripped:  # cut mid-headers, http.client may still have made a response
            r.close()
            raise _Retry(late)
        location = r.headers.get("Location")
        if r.status_code not in _REDIRECT_CODES or not location:
            return r
        r.close()
        try:
            target = urljoin(s.at, location.strip())
            _redirect_ok(s.at, target, allowed)
        except ValueError as e:
            raise _SourceFailed(f"unusable redirect Location {location!r}", kind=REFUSED) from e
        if target in chain:
            loop = " -> ".join(_redact(u) for u in [*chain[chain.index(target) :], target])
            raise _SourceFailed(f"redirect loop: {loop}", kind=REFUSED)
        chain.append(target)
        s.at = target
    raise _SourceFailed(
        f"more than {MAX_REDIRECTS} redirects (last: {_redact(s.at)})", kind=REFUSED
    )


def _redirect_ok(src: str, target: str, allowed: set[tuple[str, int]]) -> None:
    """Raise unless a redirect from ``src`` to ``target`` may be followed."""
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise _SourceFailed(
            f"redirected to {_redact(target)}; picozoo follows redirects to http(s) only",
            kind=REFUSED,
        )
    if urlsplit(src).scheme.lower() == "https" and scheme == "http":
        raise _SourceFailed(
            f"redirected from https to plain http ({_redact(target)}); refused", kind=REFUSED
        )
    if _host_key(target) not in allowed:
        raise _SourceFailed(
            f"redirected to {_redact(target)}, whose host is neither the origin nor a "
            "configured mirror (add it with --mirror to allow it)",
            kind=REFUSED,
        )


def _host_key(url: str) -> tuple[str, int] | None:
    """(host, effective port) of an http(s) URL; None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def _hosts(urls: Sequence[str]) -> set[tuple[str, int]]:
    """(host, port) pairs redirects may go to: those of ``urls`` (with both default ports for
    a URL without an explicit port, so http -> https upgrades on one host are followed)."""
    out: set[tuple[str, int]] = set()
    for url in urls:
        key = _host_key(url)
        if key is None:
            continue
        out.add(key)
        if urlsplit(url).port is None:
            out.update({(key[0], 80), (key[0], 443)})
    return out


# -- failure reasons ---------------------------------------------------------------------------
def _reason(e: BaseException, s: _State, st: NetworkSettings) -> tuple[str, bool]:
    """(one-line reason, unreachable?): unreachable = host-name resolution failed, the
    connection was refused or the TLS certificate is not trusted, which retrying soon rarely
    fixes."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(e, _Retry):
        return str(e), False
    root = _root_cause(e)
    host = urlsplit(s.at or s.url).hostname or "?"
    if isinstance(root, socket.gaierror):
        return f"cannot resolve host {host!r} ({root.strerror or root})", True
    if isinstance(root, ConnectionRefusedError):
        port = urlsplit(s.at or s.url).port
        return f"connection refused by {host}" + (f":{port}" if port else ""), True
    if isinstance(root, ssl.SSLCertVerificationError):
        return f"the TLS certificate of {host} is not trusted ({root.verify_message})", True
    if isinstance(e, requests.ConnectTimeout):
        return f"no connection to {host} within {st.connect_timeout:g} s", False
    if isinstance(e, requests.ReadTimeout) or isinstance(root, (ReadTimeoutError, TimeoutError)):
        return f"no data for {st.read_timeout:g} s (read timeout)", False
    text = " ".join(str(root).split()) or type(root).__name__
    return f"{type(root).__name__}: {text}", False


_UNREACHABLE = (socket.gaierror, ConnectionRefusedError, ssl.SSLCertVerificationError)


def _root_cause(e: BaseException) -> BaseException:
    """The innermost exception behind ``e`` (through requests' and urllib3's wrappers); an
    :data:`_UNREACHABLE` error wins wherever it is in the chain."""
    queue, seen, last = [e], set(), e
    while queue:
        cur = queue.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, _UNREACHABLE):
            return cur
        last = cur
        nxt = [getattr(cur, "reason", None), cur.__cause__, cur.__context__, *cur.args]
        queue.extend(x for x in nxt if isinstance(x, BaseException))
    return last


def _hash_prefix(part: Path, h: Any) -> int:
    with open_nofollow(part, "rb") as f:
        return copy_hashing(f, None, hasher=h)[1]


def _read_meta(part: Path) -> dict[str, Any]:
    try:
        with open_nofollow(meta_path(part), "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _redact(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        return url.replace(parts.password, "***")
    return url
