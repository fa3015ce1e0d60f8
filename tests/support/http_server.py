"""A real HTTP server on 127.0.0.1 for download tests, with Range support and fault injection.

>>> with serve_directory(Path("/srv/mirror")) as srv:      # doctest: +SKIP
...     srv.drop_after("deploy/Inference/x.tar", nbytes=100_000, times=3)
...     requests.get(srv.url + "/deploy/Inference/x.tar")

Every response carries an ETag (size + mtime + inode) and Last-Modified, so clients can resume
with ``Range`` + ``If-Range``. ``stats`` counts requests and body bytes per path on the server
side, which is how tests prove "one download" or "resumed, not restarted".

Hostile behaviours (each bounded in count and time): canned replies such as an HTML error page
answered with 200 (``reply_next``), bodies gzip-compressed with ``Content-Encoding: gzip``
(``gzip_next``), resumed replies served from another file under the same validators
(``serve_ranges_from``), a ``Content-Length`` shorter than the ``Content-Range``
(``short_length_next``), one byte at a time (``drip_next``, ``drip_headers_next``) and
redirects (``redirect``), a body that pauses part-way until the test says so (``hold_after``,
so a client can be interrupted mid-download however loaded the machine is).
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Stats:
    """Server-side counters, per URL path without the leading slash."""

    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    full_gets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    range_gets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    statuses: list[tuple[str, int]] = field(default_factory=list)


class LoopbackServer:
    """Handle on a running server: ``url``, ``stats`` and fault-injection knobs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.stats = Stats()
        self.lock = threading.Lock()
        self.url = ""
        self.use_etag = True
        self.use_last_modified = True
        self.honour_range = True
        self.rate: float | None = None  # bytes per second per response, None = unthrottled
        self._drops: dict[str, list[int]] = defaultdict(list)
        self._errors: dict[str, list[int]] = defaultdict(list)
        self._stalls: dict[str, list[float]] = defaultdict(list)
        self._replies: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
        self._gzips: dict[str, list[bool]] = defaultdict(list)
        self._shorts: dict[str, list[int]] = defaultdict(list)
        self._drips: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._header_drips: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._redirects: dict[str, tuple[int, str]] = {}
        self._ranges_from: dict[str, Path] = {}
        self._holds: dict[str, list[int]] = defaultdict(list)
        self.released = threading.Event()

    # -- fault injection ------------------------------------------------------------------
    def drop_after(self, path: str, nbytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` close the connection after ``nbytes`` of body."""
        with self.lock:
            self._drops[path.lstrip("/")].extend([nbytes] * times)

    def hold_after(self, path: str, nbytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send at least ``nbytes`` of body (whole 64 KiB
        chunks), then pause until :meth:`release` (or the server stops; at most 10 minutes)."""
        with self.lock:
            self._holds[path.lstrip("/")].extend([nbytes] * times)

    def release(self) -> None:
        """Let every held body go on (and any held from now on)."""
        self.released.set()

    def fail_next(self, path: str, status: int = 503, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` answer ``status`` with no body."""
        with self.lock:
            self._errors[path.lstrip("/")].extend([status] * times)

    def stall_next(self, path: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send headers, then hang for ``seconds``."""
        with self.lock:
            self._stalls[path.lstrip("/")].extend([seconds] * times)

    def reply_next(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        times: int = 1,
    ) -> None:
        """The next ``times`` GETs of ``path`` answer ``status`` with ``body`` instead of the
        file (an HTML error page served with 200, say)."""
        with self.lock:
            self._replies[path.lstrip("/")].extend([(status, content_type, body)] * times)

    def gzip_next(self, path: str, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send the (ranged) body gzip-compressed, with
        ``Content-Encoding: gzip``, whatever the client's ``Accept-Encoding``."""
        with self.lock:
            self._gzips[path.lstrip("/")].extend([True] * times)

    def short_length_next(self, path: str, missing: int, times: int = 1) -> None:
        """The next ``times`` range replies of ``path`` announce the full ``Content-Range`` but a
        ``Content-Length`` (and body) ``missing`` bytes shorter."""
        with self.lock:
            self._shorts[path.lstrip("/")].extend([missing] * times)

    def drip_next(self, path: str, rate: float, seconds: float, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send the body one byte at a time, ``rate`` bytes
        per second, for at most ``seconds`` (then the connection is closed)."""
        with self.lock:
            self._drips[path.lstrip("/")].extend([(rate, seconds)] * times)

    def drip_headers_next(self, path: str, rate: float, seconds: float, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` trickle response header bytes at ``rate`` per
        second for at most ``seconds``, then close the connection (no body)."""
        with self.lock:
            self._header_drips[path.lstrip("/")].extend([(rate, seconds)] * times)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Every GET of ``path`` answers ``status`` with ``Location: location`` (relative or
        absolute, any scheme)."""
        with self.lock:
            self._redirects[path.lstrip("/")] = (status, location)

    def serve_ranges_from(self, path: str, other: Path) -> None:
        """Range requests of ``path`` get their bytes and ``Content-Range`` total from
        ``other`` while the validators (ETag, Last-Modified) stay those of ``path``'s file: a
        file replaced upstream without its validators changing."""
        with self.lock:
            self._ranges_from[path.lstrip("/")] = Path(other)

    def _pop(self, table: dict[str, list], path: str) -> object | None:
        with self.lock:
            q = table.get(path)
            return q.pop(0) if q else None

    def total_bytes(self, path: str) -> int:
        return self.stats.bytes_sent[path.lstrip("/")]


def _make_handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # silence
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _status(self, rel: str, code: int) -> None:
            with server.lock:
                server.stats.statuses.append((rel, code))

        def _canned(self, rel: str, code: int, body: bytes, headers: dict[str, str]) -> None:
            self._status(rel, code)
            self.send_response(code)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def _drip(self, rel: str | None, data: bytes, rate: float, seconds: float) -> None:
            """Send ``data`` one byte at a time (``rate`` per second) for at most ``seconds``,
            then close the connection; body bytes (``rel`` given) are counted in stats."""
            self.close_connection = True
            t_end = time.monotonic() + seconds
            for i in range(len(data)):
                if time.monotonic() >= t_end:
                    break
                try:
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                if rel is not None:
                    with server.lock:
                        server.stats.bytes_sent[rel] += 1
                time.sleep(1 / rate)
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _serve(self, head: bool) -> None:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            with server.lock:
                server.stats.requests[rel] += 1
                redirect = server._redirects.get(rel)
            if redirect is not None:
                self._canned(rel, redirect[0], b"", {"Location": redirect[1]})
                return
            reply = server._pop(server._replies, rel)
            if reply is not None and not head:
                code, ctype, body = reply  # type: ignore[misc]
                self._canned(rel, code, body, {"Content-Type": ctype})
                return
            header_drip = server._pop(server._header_drips, rel)
            if header_drip is not None and not head:
                rate, seconds = header_drip  # type: ignore[misc]
                self._drip(None, b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 10_000, rate, seconds)
                return
            target = (server.root / rel).resolve()
            if server.root.resolve() not in target.parents or not target.is_file():
                self._status(rel, 404)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            err = server._pop(server._errors, rel)
            if err is not None and not head:
                self._status(rel, int(err))  # type: ignore[call-overload]
                self.send_response(int(err))  # type: ignore[call-overload]
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            st = target.stat()
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'
            last_mod = email.utils.formatdate(st.st_mtime, usegmt=True)
            with server.lock:
                other = server._ranges_from.get(rel)
            if other is not None and self.headers.get("Range"):
                target = other  # same validators, other bytes
            size = target.stat().st_size
            start, end = 0, size - 1
            partial = False
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if rng and server.honour_range and rng.startswith("bytes="):
                valid = if_range is None or if_range in (
                    etag if server.use_etag else None,
                    last_mod if server.use_last_modified else None,
                )
                spec = rng[len("bytes=") :].split(",")[0].strip()
                a, _, b = spec.partition("-")
                if valid and a.isdigit():
                    start = int(a)
                    end = min(int(b), size - 1) if b.isdigit() else size - 1
                    if start >= size:
                        self._status(rel, 416)
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    partial = True
            code = 206 if partial else 200
            self._status(rel, code)
            with server.lock:
                if not head:
                    if partial:
                        server.stats.range_gets[rel] += 1
                    else:
                        server.stats.full_gets[rel] += 1
            self.send_response(code)
            length = end - start + 1
            short = server._pop(server._shorts, rel) if partial and not head else None
            gzipped = None
            if server._pop(server._gzips, rel) and not head:
                with open(target, "rb") as f:
                    f.seek(start)
                    gzipped = gzip.compress(f.read(length))
                self.send_header("Content-Encoding", "gzip")
            if short is not None:
                length -= int(short)  # type: ignore[call-overload]
            self.send_header("Content-Length", str(length if gzipped is None else len(gzipped)))
            self.send_header("Accept-Ranges", "bytes" if server.honour_range else "none")
            if server.use_etag:
                self.send_header("ETag", etag)
            if server.use_last_modified:
                self.send_header("Last-Modified", last_mod)
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if head:
                return
            if gzipped is not None:
                with contextlib.suppress(OSError):
                    self.wfile.write(gzipped)
                with server.lock:
                    server.stats.bytes_sent[rel] += len(gzipped)
                return
            drip = server._pop(server._drips, rel)
            if drip is not None:
                with open(target, "rb") as f:
                    f.seek(start)
                    self._drip(rel, f.read(length), *drip)  # type: ignore[misc]
                return
            drop = server._pop(server._drops, rel)
            hold = server._pop(server._holds, rel)
            stall = server._pop(server._stalls, rel)
            if stall is not None:
                time.sleep(float(stall))  # type: ignore[arg-type]
            budget = length if drop is None else min(length, int(drop))  # type: ignore[call-overload]
            sent = 0
            t0 = time.monotonic()
            with open(target, "rb") as f:
                f.seek(start)
                while sent < budget:
                    chunk = f.read(min(64 * 1024, budget - sent))
                    if not chunk:
                        break
                    try:
                        self.wfile.write(chunk)
                    except OSError:
                        break
                    sent += len(chunk)
                    with server.lock:
                        server.stats.bytes_sent[rel] += len(chunk)
                    if hold is not None and sent >= int(hold):  # type: ignore[call-overload]
                        self.wfile.flush()
                        server.released.wait(timeout=600)
                        hold = None
                    if server.rate:
                        ahead = sent / server.rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            if drop is not None and sent < length:
                self.wfile.flush()
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

    return Handler


@contextmanager
def serve_directory(root: Path) -> Iterator[LoopbackServer]:
    """Serve files under ``root`` on ``http://127.0.0.1:<free port>`` for the ``with`` body."""
    handle = LoopbackServer(root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(handle))
    httpd.daemon_threads = True
    handle.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield handle
    finally:
        handle.release()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":  # serve a directory from the command line (used by benchmarks)
    import sys

    with serve_directory(Path(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())) as srv:
        print(srv.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
