"""The picozoo exception hierarchy.

Every error a user can cause derives from :class:`PicozooError`. The CLI renders them in one
place (``picozoo.cli.main``) as a single ``error: ...`` line plus an optional hint, and exits
with ``exit_code``; the traceback is shown only with ``PICOZOO_DEBUG=1``.
"""

from __future__ import annotations


class PicozooError(Exception):
    """Base class of every error picozoo reports to a user.

    >>> str(PicozooError("model not cached", hint="run `picozoo pull picodet-s-416`"))
    'model not cached (run `picozoo pull picodet-s-416`)'
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class RegistryError(PicozooError):
    """The registry file is missing, unreadable or has a malformed entry."""

    exit_code = 3

    def __init__(
        self, path: str, problem: str, *, entry: str | None = None, field: str | None = None
    ) -> None:
        where = path
        if entry:
            where += f": entry {entry!r}"
        if field:
            where += f", field {field!r}"
        super().__init__(
            f"{where}: {problem}", hint="fix the registry file or drop --registry/PICOZOO_REGISTRY"
        )
        self.path, self.problem, self.entry, self.field = path, problem, entry, field


class UnknownModelError(PicozooError):
    """A model id that is not in the registry."""

    exit_code = 2

    def __init__(self, model_id: str, suggestions: list[str]) -> None:
        hint = (
            f"did you mean {', '.join(repr(s) for s in suggestions)}?"
            if suggestions
            else "run `picozoo list` to see every model id"
        )
        super().__init__(f"unknown model {model_id!r}", hint=hint)
        self.model_id, self.suggestions = model_id, suggestions


class UnknownArtifactError(PicozooError):
    """A model has no artifact of the requested kind."""

    exit_code = 2

    def __init__(self, model_id: str, kind: str, available: list[str]) -> None:
        super().__init__(
            f"model {model_id!r} has no {kind!r} artifact",
            hint=f"available: {', '.join(available)}"
            if available
            else "it is a claims-only comparison row; "
            "`picozoo list --family picodet` shows models you can pull",
        )
        self.model_id, self.kind, self.available = model_id, kind, available


class UsageError(PicozooError):
    """Options that do not fit together, or a value out of range."""

    exit_code = 2
