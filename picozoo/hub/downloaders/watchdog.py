"""Two watchdogs: the deadline for response headers and the low-speed limit of a body.

>>> w = LowSpeed(min_speed=1000, window=1.0)
>>> w.update(10)  # the window is still open
>>> w.start -= 1.0  # one second later
>>> w.update(10)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
picozoo.hub.downloaders.base.TooSlow: slower than 1000 bytes/s for 1 s (20 bytes/s; ...
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from .base import TooSlow

USER_AGENT = "picozoo (+https://github.com/PaddlePaddle/PaddleDetection model zoo client)"


class HeaderDeadline:
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
def watched_session() -> Iterator[tuple[Any, HeaderDeadline]]:
    """A requests session whose connections the returned :class:`HeaderDeadline` can cut."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    watchdog = HeaderDeadline()

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


class LowSpeed:
    """Fails an attempt (:class:`~.base.TooSlow`) that receives fewer than ``min_speed``
    bytes/s over a window of ``window`` seconds (``min_speed`` 0: never)."""

    def __init__(self, min_speed: float, window: float) -> None:
        self.min_speed, self.window = min_speed, window
        self.start, self.bytes = time.monotonic(), 0

    def update(self, received: int) -> None:
        """Count ``received`` more bytes; raise when the window closed too slow."""
        self.bytes += received
        elapsed = time.monotonic() - self.start
        if self.min_speed <= 0 or elapsed < self.window:
            return
        if self.bytes < self.min_speed * elapsed:
            raise TooSlow(
                f"slower than {self.min_speed:g} bytes/s for {elapsed:.0f} s "
                f"({self.bytes / elapsed if elapsed else 0:.0f} bytes/s; PICOZOO_MIN_SPEED, "
                "PICOZOO_MIN_SPEED_TIME)"
            )
        self.start, self.bytes = time.monotonic(), 0
