"""The ``http(s)://`` downloader: streams into a ``.part`` while hashing, resumes it with
``Range`` + ``If-Range`` (ETag, else Last-Modified) so a changed file restarts from zero instead
of being spliced, retries transient failures (:mod:`.retry`), and checks the byte count against
``Content-Length``/``Content-Range``.

Hostile or broken servers are contained: a resumed reply whose ``Content-Range`` total differs
from the first reply's restarts the file, a ``Content-Length`` that disagrees with
``Content-Range`` fails the attempt; ``gzip``/``deflate`` bodies (sent although we ask for
``identity``) are decoded, never stored compressed, other encodings are refused; redirects
follow :mod:`.redirects`; slow headers and slow bodies trip :mod:`.watchdog`.

>>> http_download("http://127.0.0.1:8000/x.tar", Path("/tmp/x.part")).size   # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...atomic import CHUNK, atomic_write_text, open_nofollow
from ...errors import DiskError
from ...settings import NetworkSettings
from ..disk import disk_error
from ..partial import PartialDownload
from .base import (
    NETWORK,
    REFUSED,
    CheckFn,
    DownloadResult,
    ProgressFn,
    Retry,
    SourceFailed,
    TooSlow,
    log,
    redact,
)
from .redirects import allowed_hosts, get_following
from .retry import RetryPolicy, reason, transient_errors
from .sink import Sink
from .watchdog import HeaderDeadline, LowSpeed, watched_session

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)$")


@dataclass
class _State:
    """Where a download stands; mutated by each attempt so failures keep their progress."""

    url: str
    sink: Sink
    meta: dict[str, Any]  # the resume validators of the bytes in the sink
    got: int = 0  # bytes received over the wire
    total: int | None = None
    encoded: bool = False  # the server compresses the body: ranges cannot be resumed
    at: str = ""  # the URL of the current request (after redirects)
    headers: dict[str, str] = field(default_factory=dict)  # of the current request

    @property
    def offset(self) -> int:
        return self.sink.offset

    def restart(self) -> None:
        """The file starts over from byte 0."""
        self.sink.reset()
        self.meta, self.total = {"source": self.url}, None


@dataclass(frozen=True)
class _Job:
    """What stays the same over the attempts of one download."""

    st: NetworkSettings
    label: str
    progress: ProgressFn | None
    check: CheckFn | None
    allowed: set[tuple[str, int]]


def http_download(
    url: str,
    part: Path | None,
    *,
    label: str = "",
    settings: NetworkSettings | None = None,
    progress: ProgressFn | None = None,
    check: CheckFn | None = None,
    allowed: set[tuple[str, int]] | None = None,
) -> DownloadResult:
    """Download ``url`` into ``part`` (None: hash only), resuming a ``part`` left by an earlier
    call; redirects may go to the hosts in ``allowed`` (default: ``url``'s). Raises
    :class:`~.base.SourceFailed` when this source cannot serve the file."""
    job = _Job(settings or NetworkSettings(), label, progress, check,
               allowed if allowed is not None else allowed_hosts([url]))  # fmt: skip
    state = _State(url, Sink(part), {"source": url})
    _prepare(state)
    try:
        with watched_session() as (session, watchdog):
            return _attempts(session, watchdog, state, job)
    finally:
        state.sink.close()  # stops the hashing thread; a no-op after digest()


def _prepare(s: _State) -> None:
    """Resume the ``.part`` when its validators are for this URL, else start clean."""
    part = s.sink.part
    if part is None:
        return
    part.parent.mkdir(parents=True, exist_ok=True)
    old = _read_meta(part)
    if (
        part.exists()
        and old.get("source") == s.url
        and (old.get("etag") or old.get("last_modified"))
    ):
        s.meta = old
        s.sink.resume()
    else:
        PartialDownload(part).discard()


def _attempts(session: Any, watchdog: HeaderDeadline, s: _State, job: _Job) -> DownloadResult:
    """Attempt until the file is complete or the retry policy gives up."""
    import requests

    transient, policy, resumed_from = transient_errors(), RetryPolicy.of(job.st), s.offset
    while True:
        policy.start()
        before = s.offset
        try:
            _attempt(session, watchdog, s, job)
            if s.total is not None and s.offset != s.total:
                raise Retry(f"connection closed at byte {s.offset} of {s.total}")
            s.sink.run_check(job.check)
            return DownloadResult(s.sink.digest(), s.offset, s.url, s.got, resumed_from)
        except transient as e:
            _back_off(e, s, job, policy, progressed=s.offset > before)
        except requests.RequestException as e:  # a URL requests cannot use at all
            raise SourceFailed(reason(e, s.at or s.url, job.st)[0], kind=REFUSED) from e
        except OSError as e:  # writing the .part: a full or read-only disk
            err = _disk_error(e, s)
            if err is None:
                raise
            raise err from e


def _back_off(
    e: BaseException, s: _State, job: _Job, policy: RetryPolicy, *, progressed: bool
) -> None:
    """Wait before the next attempt, or give the source up."""
    why, unreachable = reason(e, s.at or s.url, job.st)
    delay = policy.after_failure(
        progressed=progressed and not isinstance(e, TooSlow), unreachable=unreachable
    )
    if delay is None:
        raise SourceFailed(f"gave up after {policy.tries()}: {why}", kind=NETWORK) from e
    log.info("%s: %s; retrying in %.1f s (attempt %d)",
             job.label or redact(s.url), why, delay, policy.attempts + 1)  # fmt: skip
    time.sleep(delay)


def _disk_error(e: OSError, s: _State) -> DiskError | None:
    need = s.total - s.offset if s.total is not None else None
    kept = "the partial download is kept and resumed" if s.offset else ""
    return disk_error(e, s.sink.part or Path(s.url), need=need, kept=kept)


def _attempt(session: Any, watchdog: HeaderDeadline, s: _State, job: _Job) -> None:
    """One request: ask for the rest of the file, validate the reply, stream its body."""
    if s.encoded and s.offset > 0:  # a compressed body cannot be resumed byte-wise
        s.restart()
    s.headers = _range_headers(s)
    s.at = s.url
    timeouts = (job.st.connect_timeout, job.st.read_timeout)
    with get_following(session, watchdog, s.url, s.headers, timeouts, job.allowed,
                       on_hop=lambda url: setattr(s, "at", url)) as r:  # fmt: skip
        if _already_complete(s, r):
            return
        s.sink.content_type = r.headers.get("Content-Type")
        decoder = _decoder(r.headers.get("Content-Encoding", ""))
        if r.status_code == 206 and s.offset > 0:
            _resumed_reply(s, r.headers, decoder)
        else:
            _fresh_reply(s, r, decoder)
        _stream(r, s, job, decoder)


def _range_headers(s: _State) -> dict[str, str]:
    """``Range`` + ``If-Range`` for the bytes not yet here (none at offset 0)."""
    if s.offset == 0:
        return {}
    headers = {"Range": f"bytes={s.offset}-"}
    etag = s.meta.get("etag")
    validator = etag if etag and not str(etag).startswith("W/") else s.meta.get("last_modified")
    if validator:
        headers["If-Range"] = validator
    return headers


def _already_complete(s: _State, r: Any) -> bool:
    """Check the status code: True when a 416 says the file is complete; raise
    :class:`~.base.Retry` or :class:`~.base.SourceFailed` for an error status."""
    code = r.status_code
    if code == 416 and s.offset > 0:
        m = _UNSATISFIED_RANGE.match(r.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == s.offset and "If-Range" in s.headers:
            s.total = s.offset  # validator matched and nothing is left: already complete
            return True
        s.restart()  # our .part is not a prefix of this file: start over
        raise Retry("range not satisfiable, restarting")
    if code >= 500 or code == 429:
        raise Retry(f"HTTP {code}")
    if code >= 400:
        raise SourceFailed(f"HTTP {code}")
    return False


def _resumed_reply(s: _State, headers: Any, decoder: Any) -> None:
    if decoder is not None:
        s.restart()
        s.encoded = True
        raise Retry("the server compressed a resumed reply, restarting")
    _check_range(s, headers)


def _fresh_reply(s: _State, r: Any, decoder: Any) -> None:
    """A reply with the whole file: record its validators for a later resume."""
    if r.status_code != 200:
        raise SourceFailed(f"unexpected HTTP {r.status_code}")
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
    if s.sink.part is not None:
        atomic_write_text(PartialDownload(s.sink.part).meta, json.dumps(s.meta))


def _check_range(s: _State, headers: Any) -> None:
    """Validate a 206 reply to ``Range: bytes=<offset>-`` before using a byte of it."""
    m = _CONTENT_RANGE.match(headers.get("Content-Range", "").strip())
    first = s.meta.get("total")
    first = first if isinstance(first, int) else None
    why = _range_mismatch(m, s.offset, first)
    if why is not None:
        s.restart()
        raise Retry(why)
    assert m is not None
    start, end = int(m.group(1)), int(m.group(2))
    cl = headers.get("Content-Length")
    if cl is not None and cl.strip() != str(end - start + 1):
        raise Retry(f"Content-Length {cl} disagrees with Content-Range {m.group(0)!r}")
    total = _range_total(m)
    s.total = total if total is not None else first


def _range_mismatch(m: re.Match[str] | None, offset: int, first: int | None) -> str | None:
    """Why a ``Content-Range`` cannot continue the bytes we have (None: it can)."""
    if not m or int(m.group(1)) != offset:
        return "server answered a different range, restarting"
    start, end, total = int(m.group(1)), int(m.group(2)), _range_total(m)
    if total is not None and first is not None and total != first:
        return f"file size changed from {first} to {total} bytes, restarting"
    if end < start or (total is not None and end >= total):
        return f"inconsistent Content-Range {m.group(0)!r}, restarting"
    return None


def _range_total(m: re.Match[str]) -> int | None:
    return int(m.group(3)) if m.group(3) != "*" else None


def _stream(r: Any, s: _State, job: _Job, decoder: Any) -> None:
    """Append the body to the ``.part`` (decoded if compressed); fail the attempt when it is
    slower than the low-speed limit."""
    read = _reader(r)
    speed = LowSpeed(job.st.min_speed, job.st.min_speed_time)
    out = s.sink.open()
    try:
        while data := read(CHUNK, decode_content=False):
            s.got += len(data)
            for chunk in _inflate(decoder, data) if decoder is not None else (data,):
                s.sink.add(chunk, out, job.check)
            if job.progress:
                job.progress(job.label, s.offset, s.total)
            speed.update(len(data))
        if decoder is not None:
            _flush(decoder, s, out, job.check)
    finally:
        if out is not None:
            out.close()


def _reader(r: Any) -> Any:
    """``read(n, decode_content)`` returning what has arrived (at most ``n`` bytes)."""
    read = getattr(r.raw, "read1", None)
    if read is not None:
        return read

    def small_read(n: int, decode_content: bool) -> bytes:  # urllib3 < 2.3: reads block
        return bytes(r.raw.read(min(n, 16384), decode_content=decode_content))

    return small_read


def _flush(decoder: Any, s: _State, out: IO[bytes] | None, check: CheckFn | None) -> None:
    tail = decoder.flush()
    if tail:
        s.sink.add(tail, out, check)
    if not decoder.eof:
        raise Retry("the compressed body ended early")


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for a gzip/deflate ``Content-Encoding``; None for identity."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    raise SourceFailed(f"unsupported Content-Encoding {encoding!r}", kind=REFUSED)


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    """Decompress ``data`` in bounded pieces (a small body may inflate to a huge one)."""
    try:
        while data:
            piece = decoder.decompress(data, CHUNK)
            if piece:
                yield piece
            data = decoder.unconsumed_tail
    except zlib.error as e:
        raise SourceFailed(f"the compressed body is corrupt ({e})", kind=REFUSED) from e


def _read_meta(part: Path) -> dict[str, Any]:
    """The resume validators of ``part`` ({} when there are none)."""
    try:
        with open_nofollow(PartialDownload(part).meta, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
