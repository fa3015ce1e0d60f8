"""A real HTTP server on 127.0.0.1 for download tests, with Range support and fault injection.

>>> with serve_directory(Path("/srv/mirror")) as srv:      # doctest: +SKIP
...     srv.drop_after("deploy/Inference/x.tar", nbytes=100_000, times=3)
...     requests.get(srv.url + "/deploy/Inference/x.tar")

Every response carries an ETag (size + mtime + inode) and Last-Modified, so clients can resume
with ``Range`` + ``If-Range``. ``stats`` counts requests and body bytes per path on the server
side, which is how tests prove "one download" or "resumed, not restarted".
"""

from __future__ import annotations

import contextlib
import email.utils
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

    # -- fault injection ------------------------------------------------------------------
    def drop_after(self, path: str, nbytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` close the connection after ``nbytes`` of body."""
        with self.lock:
            self._drops[path.lstrip("/")].extend([nbytes] * times)

    def fail_next(self, path: str, status: int = 503, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` answer ``status`` with no body."""
        with self.lock:
            self._errors[path.lstrip("/")].extend([status] * times)

    def stall_next(self, path: str, seconds: float, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send headers, then hang for ``seconds``."""
        with self.lock:
            self._stalls[path.lstrip("/")].extend([seconds] * times)

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

        def _serve(self, head: bool) -> None:
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            with server.lock:
                server.stats.requests[rel] += 1
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
            size = st.st_size
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
            self.send_header("Content-Length", str(length))
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
            drop = server._pop(server._drops, rel)
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
