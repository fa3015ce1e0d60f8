"""The redirect policy: follow only to ``http(s)`` URLs on the host of a source or of an
origin (never to ``file://``, never from https to http); loops and more than
:data:`MAX_REDIRECTS` hops fail the source.

>>> allowed = allowed_hosts(["https://mirror.example/zoo/x.tar"])
>>> redirect_ok("https://mirror.example/a", "https://mirror.example/b", allowed)
>>> redirect_ok("https://mirror.example/a", "http://mirror.example/b", allowed)
Traceback (most recent call last):
...
picozoo.hub.downloaders.base.SourceFailed: redirected from https to plain http (...); refused
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from .base import REFUSED, Retry, SourceFailed, redact
from .watchdog import HeaderDeadline

MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)


def get_following(
    session: Any,
    watchdog: HeaderDeadline,
    url: str,
    headers: dict[str, str],
    timeouts: tuple[float, float],
    allowed: set[tuple[str, int]],
    on_hop: Any = None,
) -> Any:
    """GET ``url`` (streamed), following redirects only where :func:`redirect_ok` allows;
    response headers must arrive within the sum of ``timeouts`` (connect, read).
    ``on_hop(url)`` hears each URL requested (for messages about the current host)."""
    import requests

    at, chain = url, [url]
    limit = timeouts[0] + timeouts[1]
    late = f"no complete response headers within {limit:g} s"
    for _ in range(MAX_REDIRECTS + 1):
        if on_hop is not None:
            on_hop(at)
        try:
            with watchdog.deadline(limit):
                r = session.get(at, headers=headers, stream=True, timeout=timeouts,
                                allow_redirects=False)  # fmt: skip
        except requests.RequestException as e:
            if watchdog.tripped:
                raise Retry(late) from e
            raise
        if watchdog.tripped:  # cut mid-headers, http.client may still have made a response
            r.close()
            raise Retry(late)
        location = r.headers.get("Location")
        if r.status_code not in REDIRECT_CODES or not location:
            return r
        r.close()
        at = _next_hop(at, location, chain, allowed)
        chain.append(at)
    raise SourceFailed(f"more than {MAX_REDIRECTS} redirects (last: {redact(at)})", kind=REFUSED)


def _next_hop(at: str, location: str, chain: list[str], allowed: set[tuple[str, int]]) -> str:
    """Where a redirect from ``at`` to ``location`` leads, if it may be followed."""
    try:
        target = urljoin(at, location.strip())
        redirect_ok(at, target, allowed)
    except ValueError as e:
        raise SourceFailed(f"unusable redirect Location {location!r}", kind=REFUSED) from e
    if target in chain:
        loop = " -> ".join(redact(u) for u in [*chain[chain.index(target) :], target])
        raise SourceFailed(f"redirect loop: {loop}", kind=REFUSED)
    return target


def redirect_ok(src: str, target: str, allowed: set[tuple[str, int]]) -> None:
    """Raise unless a redirect from ``src`` to ``target`` may be followed."""
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise SourceFailed(
            f"redirected to {redact(target)}; picozoo follows redirects to http(s) only",
            kind=REFUSED,
        )
    if urlsplit(src).scheme.lower() == "https" and scheme == "http":
        raise SourceFailed(
            f"redirected from https to plain http ({redact(target)}); refused", kind=REFUSED
        )
    if host_key(target) not in allowed:
        raise SourceFailed(
            f"redirected to {redact(target)}, whose host is neither the origin nor a "
            "configured mirror (add it with --mirror to allow it)",
            kind=REFUSED,
        )


def host_key(url: str) -> tuple[str, int] | None:
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


def allowed_hosts(urls: Sequence[str]) -> set[tuple[str, int]]:
    """(host, port) pairs redirects may go to: those of ``urls`` (with both default ports for
    a URL without an explicit port, so http -> https upgrades on one host are followed)."""
    out: set[tuple[str, int]] = set()
    for url in urls:
        key = host_key(url)
        if key is None:
            continue
        out.add(key)
        if urlsplit(url).port is None:
            out.update({(key[0], 80), (key[0], 443)})
    return out
