"""Downloads: try each source URL in order with the downloader its scheme calls for.

``download(sources, part)`` is the orchestrator, as pooch's ``core`` is: it picks a downloader
by URL scheme (:mod:`.downloaders.http` for ``http(s)://``, :mod:`.downloaders.file` for
``file://``), falls back to the next source when one cannot serve the file, and turns the
failures into one error with a hint. Downloaders stream into ``part`` while hashing and never
rename anything: the caller moves the ``.part`` into place after its own checks (hash pins),
then drops the resume validators (:class:`~picozoo.hub.partial.PartialDownload`). Processors
(:mod:`picozoo.hub.unpack`) run after that, on the verified bytes.

``check(head, content_type)`` sees the first bytes of each source's file and may refuse them
(:mod:`picozoo.hub.content`: an HTML error page is not an ``.onnx``) before anything is kept.
Redirects may go to the host of a source or of ``origins`` (:mod:`.downloaders.redirects`).
Retries are reported through the ``picozoo.hub.download`` logger at INFO level (the CLI prints
them on stderr; the library is quiet unless the caller configures logging).

>>> r = download(["http://127.0.0.1:8000/deploy/x.tar"], Path("/tmp/x.part"))   # doctest: +SKIP
>>> r.sha256, r.size, r.transferred                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DownloadError, WrongContentError
from ..settings import NetworkSettings
from .downloaders.base import (
    MISSING,
    NETWORK,
    REFUSED,
    CheckFn,
    DownloadResult,
    ProgressFn,
    SourceFailed,
    log,
    redact,
)
from .downloaders.file import copy_file
from .downloaders.http import http_download
from .downloaders.redirects import allowed_hosts, host_key
from .partial import PartialDownload

__all__ = ["CheckFn", "DownloadResult", "ProgressFn", "download", "downloader_for"]


@dataclass(frozen=True)
class _Job:
    """What every source of one download shares."""

    label: str
    settings: NetworkSettings
    progress: ProgressFn | None
    check: CheckFn | None
    allowed: set[tuple[str, int]]


#: ``downloader(source_url, part, job)``
Downloader = Callable[[str, "Path | None", _Job], DownloadResult]


def _file(src: str, part: Path | None, job: _Job) -> DownloadResult:
    return copy_file(src, part, job.label, job.progress, job.check)


def _http(src: str, part: Path | None, job: _Job) -> DownloadResult:
    return http_download(src, part, label=job.label, settings=job.settings,
                         progress=job.progress, check=job.check, allowed=job.allowed)  # fmt: skip


#: The downloader of each URL scheme.
DOWNLOADERS: dict[str, Downloader] = {"file": _file, "http": _http, "https": _http}


def downloader_for(src: str) -> Downloader:
    """The downloader of ``src``'s scheme; a URL none can use fails that source.

    >>> downloader_for("HTTPS://h/x.tar") is DOWNLOADERS["https"]
    True
    >>> downloader_for("ftp://h/x.tar")
    Traceback (most recent call last):
    ...
    picozoo.hub.downloaders.base.SourceFailed: not a usable http(s):// or file:// URL
    """
    scheme = src.partition(":")[0].lower()
    chosen = DOWNLOADERS.get(scheme)
    if chosen is None or (scheme != "file" and host_key(src) is None):
        raise SourceFailed("not a usable http(s):// or file:// URL", kind=REFUSED)
    return chosen


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
    job = _Job(label, settings or NetworkSettings(), progress, check,
               allowed_hosts([*sources, *origins]))  # fmt: skip
    problems: list[str] = []
    kinds: set[str] = set()
    for i, src in enumerate(sources):
        try:
            return downloader_for(src)(src, part, job)
        except SourceFailed as e:
            problems.append(f"{redact(src)}: {e}")
            kinds.add(e.kind)
        except WrongContentError as e:
            if part is not None:
                PartialDownload(part).discard()
            problems.append(f"{redact(src)}: {e.message}")
            kinds.add("wrong")
        if i + 1 < len(sources):
            log.info("%s: %s; trying the next source", label or src, problems[-1])
    raise _failure(label or sources[0], problems, kinds, part)


def _failure(
    what: str, problems: list[str], kinds: set[str], part: Path | None
) -> DownloadError | WrongContentError:
    """The one error for a download that no source could serve."""
    if "wrong" in kinds:
        return WrongContentError(
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
    return DownloadError(f"could not download {what}: " + "; ".join(problems), hint=hint)
