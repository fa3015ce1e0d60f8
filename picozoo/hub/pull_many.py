"""Pull several artifacts, trying every one: what was fetched, what failed, and why.

One missing file (a 404 on a log) must not stop the others: :func:`pull_many` keeps going after
a failed artifact and returns a :class:`PullSummary`; :meth:`PullSummary.error` is the one
error to report when anything failed. Failures that no later artifact can escape (the disk is
full, the pins file is malformed) and Ctrl-C still stop at once.

>>> PullSummary().ok
True
>>> from picozoo.hub.registry import load_registry
>>> from picozoo.settings import Settings
>>> arts = [a for a in load_registry().get("picodet-s-416").artifacts]
>>> summary = pull_many(Store(Settings.from_env()), arts)  # doctest: +SKIP
>>> [(f.artifact.kind, f.error.exit_code) for f in summary.failed]  # doctest: +SKIP
[('log', <ExitCode.DOWNLOAD: 4>)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DiskError, PartialFailureError, PicozooError, PinsFileError
from .pull import label_of, pull
from .registry import Artifact
from .store import Entry, Store

#: Errors after which the remaining artifacts cannot succeed either.
FATAL = (DiskError, PinsFileError)


@dataclass(frozen=True)
class PullFailure:
    """An artifact that could not be pulled, and the error that said why."""

    artifact: Artifact
    error: PicozooError

    def to_dict(self) -> dict[str, Any]:
        a = self.artifact
        return {
            "model": a.model_id,
            "kind": a.kind,
            "url": a.url,
            "status": "failed",
            "error": str(self.error),
            "exit_code": int(self.error.exit_code),
        }


@dataclass
class PullSummary:
    """The outcome of :func:`pull_many`, in the order the artifacts were given."""

    fetched: list[Entry] = field(default_factory=list)
    failed: list[PullFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def rows(self) -> list[dict[str, Any]]:
        """One JSON row per artifact: the entry's fields with ``status: fetched``, or
        ``status: failed`` with the error and its exit code."""
        rows = [{**e.to_dict(), "status": "fetched"} for e in self.fetched]
        return rows + [f.to_dict() for f in self.failed]

    def describe(self) -> str:
        """One line for stderr.

        >>> PullSummary().describe()
        'fetched 0 of 0 artifacts'
        """
        total = len(self.fetched) + len(self.failed)
        text = f"fetched {len(self.fetched)} of {total} artifacts"
        if self.failed:
            text += "; failed: " + ", ".join(label_of(f.artifact) for f in self.failed)
        return text

    def error(self) -> PicozooError | None:
        """None when everything was fetched; the failure itself when only one artifact was
        asked for; else a :class:`~picozoo.errors.PartialFailureError` (exit code 4 when a
        download failed)."""
        if not self.failed:
            return None
        if len(self.failed) == 1 and not self.fetched:
            return self.failed[0].error
        total = len(self.fetched) + len(self.failed)
        return PartialFailureError(
            f"{len(self.failed)} of {total} artifacts failed: "
            + ", ".join(label_of(f.artifact) for f in self.failed),
            hint="the reasons are listed above; the others were fetched",
            failures=[f.error for f in self.failed],
        )


def pull_many(
    store: Store,
    artifacts: Sequence[Artifact],
    *,
    on_fetched: Callable[[Entry], None] | None = None,
    on_failed: Callable[[PullFailure], None] | None = None,
    **pull_options: Any,
) -> PullSummary:
    """:func:`~picozoo.hub.pull.pull` every artifact (``pull_options`` are passed on), going on
    after a failure; ``on_fetched`` / ``on_failed`` are called as each one finishes."""
    summary = PullSummary()
    for art in artifacts:
        try:
            entry = pull(store, art, **pull_options)
        except FATAL:
            raise
        except PicozooError as e:
            failure = PullFailure(art, e)
            summary.failed.append(failure)
            if on_failed is not None:
                on_failed(failure)
            continue
        summary.fetched.append(entry)
        if on_fetched is not None:
            on_fetched(entry)
    return summary
