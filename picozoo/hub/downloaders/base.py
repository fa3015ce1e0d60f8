"""What every downloader shares: its result, its callbacks and the ways a source fails.

>>> str(SourceFailed("HTTP 404")), SourceFailed("HTTP 404").kind
('HTTP 404', 'missing')
>>> redact("https://user:secret@h/x.tar")
'https://user:***@h/x.tar'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: ``progress(label, bytes_done, bytes_total_or_None)``
ProgressFn = Callable[[str, int, "int | None"], None]
#: ``check(first_bytes, content_type_or_None)``; raises WrongContentError to refuse a source
CheckFn = Callable[[bytes, "str | None"], None]

#: Retries and fallbacks are reported here at INFO level (the CLI prints them on stderr).
log = logging.getLogger("picozoo.hub.download")

# Why a source failed: decides the hint of the final error.
MISSING, NETWORK, REFUSED = "missing", "network", "refused"


class SourceFailed(Exception):
    """This source cannot serve the file (4xx, missing file, retries exhausted, policy)."""

    def __init__(self, message: str, kind: str = MISSING) -> None:
        super().__init__(message)
        self.kind = kind


class Retry(Exception):
    """A transient failure: retry the same source after a back-off."""


class TooSlow(Retry):
    """The low-speed limit tripped: counts as a failure even though some bytes came."""


@dataclass(frozen=True)
class DownloadResult:
    sha256: str
    size: int
    source: str
    transferred: int  # bytes received over the wire in this call (resumed bytes excluded)
    resumed_from: int


def redact(url: str) -> str:
    """``url`` without its password (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        return url.replace(parts.password, "***")
    return url
