"""Why an HTTP attempt failed, and whether and when to try the same source again.

Timeouts, dropped connections and 5xx are retried with exponential back-off; host-name
resolution failures, refused connections and untrusted certificates are retried once (waiting
rarely fixes them); an attempt that made progress resets the count, one that was too slow does
not (:class:`~.base.TooSlow`).

>>> policy = RetryPolicy(retries=2, max_attempts=10, backoff=0.5)
>>> policy.after_failure(progressed=False, unreachable=False), policy.failures
(0.5, 1)
"""

from __future__ import annotations

import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from ...settings import NetworkSettings
from .base import Retry


def transient_errors() -> tuple[type[BaseException], ...]:
    """The exceptions after which the same source is tried again."""
    import requests
    import urllib3

    return (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        Retry,
        ConnectionError,
        TimeoutError,
    )


class RetryPolicy:
    """Counts attempts and consecutive failures of one source; says how long to wait before
    the next attempt, or that it is time to give up (None)."""

    def __init__(self, retries: int, max_attempts: int, backoff: float) -> None:
        self.retries, self.max_attempts, self.backoff = retries, max_attempts, backoff
        self.attempts = self.failures = 0

    @classmethod
    def of(cls, st: NetworkSettings) -> RetryPolicy:
        return cls(st.retries, st.max_attempts, st.backoff)

    def start(self) -> None:
        """An attempt begins."""
        self.attempts += 1

    def after_failure(self, *, progressed: bool, unreachable: bool) -> float | None:
        """Seconds to wait before the next attempt; None: give up."""
        self.failures = 0 if progressed else self.failures + 1
        limit = min(1, self.retries) if unreachable else self.retries
        if self.failures > limit or self.attempts >= self.max_attempts:
            return None
        return min(30.0, self.backoff * 2 ** max(0, self.failures - 1))

    def tries(self) -> str:
        return f"{self.attempts} attempt" + ("s" if self.attempts > 1 else "")


_UNREACHABLE = (socket.gaierror, ConnectionRefusedError, ssl.SSLCertVerificationError)


def reason(e: BaseException, url: str, st: NetworkSettings) -> tuple[str, bool]:
    """(one-line reason, unreachable?) of a failed request to ``url``: unreachable = host-name
    resolution failed, the connection was refused or the TLS certificate is not trusted, which
    retrying soon rarely fixes."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(e, Retry):
        return str(e), False
    root = root_cause(e)
    host = urlsplit(url).hostname or "?"
    if isinstance(root, socket.gaierror):
        return f"cannot resolve host {host!r} ({root.strerror or root})", True
    if isinstance(root, ConnectionRefusedError):
        port = urlsplit(url).port
        return f"connection refused by {host}" + (f":{port}" if port else ""), True
    if isinstance(root, ssl.SSLCertVerificationError):
        return f"the TLS certificate of {host} is not trusted ({root.verify_message})", True
    if isinstance(e, requests.ConnectTimeout):
        return f"no connection to {host} within {st.connect_timeout:g} s", False
    if isinstance(e, requests.ReadTimeout) or isinstance(root, (ReadTimeoutError, TimeoutError)):
        return f"no data for {st.read_timeout:g} s (read timeout)", False
    text = " ".join(str(root).split()) or type(root).__name__
    return f"{type(root).__name__}: {text}", False


def root_cause(e: BaseException) -> BaseException:
    """The innermost exception behind ``e`` (through requests' and urllib3's wrappers); an
    unreachable-host error wins wherever it is in the chain."""
    queue: list[Any] = [e]
    seen: set[int] = set()
    last = e
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
