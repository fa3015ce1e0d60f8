"""Every error picozoo reports to a user, and the exit code of each (one meaning per code).

The CLI renders a :class:`PicozooError` in one place (``picozoo.cli.main``) as one
``picozoo: error: ...`` line with its hint, and exits with :attr:`PicozooError.exit_code`; the
traceback (with the chained cause) is shown only with ``PICOZOO_DEBUG=1``.

Errors that have a standard meaning are also the standard exception (as huggingface_hub's
are), so a library caller can catch what it knows: a :class:`DownloadError` and an
:class:`OfflineError` are ``ConnectionError`` s, a :class:`DiskError` an ``OSError``.

>>> isinstance(DownloadError("HTTP 404"), ConnectionError), isinstance(DiskError("full"), OSError)
(True, True)

>>> str(NotCachedError("picodet-s-416 is not cached", hint="run `picozoo pull picodet-s-416`"))
'picodet-s-416 is not cached (run `picozoo pull picodet-s-416`)'
>>> int(MissingDependencyError("onnx", "convert").exit_code)
11
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitCode(IntEnum):
    """picozoo's exit codes; the README's table lists them."""

    OK = 0
    FAILED = 1  #: unexpected failure, or every benchmark cell failed
    USAGE = 2  #: bad options, unknown model id / artifact kind, unusable input file
    CONFIG = 3  #: the registry or the pins file (picozoo.lock) is malformed
    DOWNLOAD = 4  #: a download failed at every source
    ARCHIVE = 5  #: an archive or downloaded file was refused (unsafe, corrupt, wrong content)
    INTEGRITY = 6  #: a hash does not match its pin, or `verify` found a problem
    OFFLINE = 7  #: offline mode and the artifact is not in the cache
    NOT_CACHED = 8  #: the command needs something that has not been pulled/converted
    CONVERSION = 9  #: a conversion step failed
    PARITY = 10  #: a converted model's outputs disagree with its source's
    MISSING_DEPENDENCY = 11  #: an optional package or external tool is not installed
    DISK = 12  #: the disk is full or the cache is read-only
    ENGINE = 13  #: an inference engine cannot load or run a model
    INTERRUPTED = 130  #: Ctrl-C


class PicozooError(Exception):
    """Base class of every error picozoo reports to a user.

    >>> str(PicozooError("model not cached", hint="run `picozoo pull picodet-s-416`"))
    'model not cached (run `picozoo pull picodet-s-416`)'
    """

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# -- usage -------------------------------------------------------------------------------------
class UsageError(PicozooError):
    """Options that do not fit together, or a value out of range."""

    exit_code = ExitCode.USAGE


class UnknownModelError(UsageError):
    """A model id that is not in the registry."""

    def __init__(self, model_id: str, suggestions: list[str]) -> None:
        hint = (
            f"did you mean {', '.join(repr(s) for s in suggestions)}?"
            if suggestions
            else "run `picozoo list` to see every model id"
        )
        super().__init__(f"unknown model {model_id!r}", hint=hint)
        self.model_id, self.suggestions = model_id, suggestions


class UnknownArtifactError(UsageError):
    """A model has no artifact of the requested kind."""

    def __init__(self, model_id: str, kind: str, available: list[str]) -> None:
        super().__init__(
            f"model {model_id!r} has no {kind!r} artifact",
            hint=f"available: {', '.join(available)}"
            if available
            else "it is a claims-only comparison row; "
            "`picozoo list --family picodet` shows models you can pull",
        )
        self.model_id, self.kind, self.available = model_id, kind, available


class ModelFileError(UsageError):
    """A file or directory that is not a model picozoo can read."""


class ResultFileError(UsageError):
    """A result file that cannot be read or is not a valid ``picozoo.bench/1`` document."""


# -- configuration files -----------------------------------------------------------------------
class RegistryError(PicozooError):
    """The registry file is missing, unreadable or has a malformed entry."""

    exit_code = ExitCode.CONFIG

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


class PinsFileError(PicozooError):
    """The pins file (``picozoo.lock``) exists but cannot be read or is malformed."""

    exit_code = ExitCode.CONFIG


# -- downloads and the store -------------------------------------------------------------------
class DownloadError(PicozooError, ConnectionError):
    """Every source of an artifact failed (also a ``ConnectionError``)."""

    exit_code = ExitCode.DOWNLOAD


class MutexTimeoutError(PicozooError):
    """Another picozoo process holds the per-artifact mutex for too long."""

    exit_code = ExitCode.FAILED

    def __init__(self, path: Path, waited: float) -> None:
        super().__init__(
            f"timed out after {waited:.0f} s waiting for {path}",
            hint="another picozoo process is working on this artifact; retry later",
        )
        self.path = path


class ArchiveError(PicozooError):
    """A tarball that is corrupt, unsafe, or lacks the files its kind must have."""

    exit_code = ExitCode.ARCHIVE


class UnsafeArchiveError(ArchiveError):
    """A tarball member could escape the extraction directory or is a special file."""


class BadArchiveError(ArchiveError):
    """A tarball that is corrupt or lacks the files its kind must have."""


class ArchiveTooLargeError(ArchiveError):
    """An archive that would unpack to more than the configured limits."""


class WrongContentError(ArchiveError):
    """Downloaded bytes that are not what the artifact kind must be (an HTML error page, a
    compressed body, ...); nothing is pinned."""


class IntegrityError(PicozooError):
    """Bytes that do not match what was pinned or recorded."""

    exit_code = ExitCode.INTEGRITY


class HashMismatchError(IntegrityError):
    """A download does not match its pinned sha256/size."""


class HashRequiredError(IntegrityError):
    """``--require-hashes`` and the artifact has no pinned hash."""


class TamperedStoreError(IntegrityError):
    """Something planted in the store (a symlink, a foreign file) that picozoo refuses to
    follow or overwrite."""


class CorruptBlobError(IntegrityError):
    """A cached file whose bytes no longer match its recorded sha256."""


class VerifyFailedError(IntegrityError):
    """``picozoo verify`` found problems (listed one per line before this error)."""


class CheckpointError(IntegrityError):
    """A ``.pdparams`` file that is corrupt or asks to run code while loading."""


class OfflineError(PicozooError, ConnectionError):
    """Offline mode and the artifact is not (verified) in the cache (also a
    ``ConnectionError``, like huggingface_hub's ``OfflineModeIsEnabled``)."""

    exit_code = ExitCode.OFFLINE


class NotCachedError(PicozooError):
    """A command needs an artifact or conversion that is not in the cache."""

    exit_code = ExitCode.NOT_CACHED


# -- conversion --------------------------------------------------------------------------------
class ConversionError(PicozooError):
    """A conversion step failed (the cache is left untouched)."""

    exit_code = ExitCode.CONVERSION


class NewerPaddleModelError(ConversionError):
    """The model was saved by paddlepaddle >= 3.3, which paddle2onnx 2.1.0 cannot parse."""


class QuantizedModelError(ConversionError):
    """A quantized Paddle model (PaddleSlim's quantize ops), which paddle2onnx cannot convert."""


class ParityError(ConversionError):
    """The converted model and its source disagree on at least one output.

    ``failures`` holds the per-output comparison rows that failed.
    """

    exit_code = ExitCode.PARITY

    def __init__(self, message: str, *, hint: str | None, failures: list[dict[str, Any]]) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures


# -- environment -------------------------------------------------------------------------------
class MissingDependencyError(PicozooError):
    """An optional package (or external tool) that this command needs is not installed.

    >>> MissingDependencyError("onnxruntime", "bench").message
    "onnxruntime is not installed; this needs the [bench] extra: pip install 'picozoo[bench]'"
    """

    exit_code = ExitCode.MISSING_DEPENDENCY

    def __init__(
        self, package: str, extra: str | None = None, *, hint: str | None = None, why: str = ""
    ) -> None:
        what = f"{package} is not installed{why}"
        if extra:
            what += f"; this needs the [{extra}] extra: pip install 'picozoo[{extra}]'"
        super().__init__(what, hint=hint)
        self.package, self.extra = package, extra


class ToolchainError(MissingDependencyError):
    """A converter that is installed in a version picozoo cannot use, or is missing."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        PicozooError.__init__(self, message, hint=hint)
        self.package, self.extra = "", None


class EngineError(PicozooError):
    """An inference engine cannot load or run a model."""

    exit_code = ExitCode.ENGINE


class DiskError(PicozooError, OSError):
    """The disk is full, or the cache is read-only (also an ``OSError``)."""

    exit_code = ExitCode.DISK


class BenchFailedError(PicozooError):
    """Every cell of a benchmark failed (the report still lists each reason)."""

    exit_code = ExitCode.FAILED


class PartialFailureError(PicozooError):
    """Some items of a command over several items failed, the others were done (each failure
    is listed before this error). Exit code: DOWNLOAD if any download failed, else the code the
    failures share, else FAILED.

    >>> int(PartialFailureError("1 of 3 failed", failures=[DownloadError("404")]).exit_code)
    4
    """

    exit_code = ExitCode.FAILED

    def __init__(
        self, message: str, *, failures: list[PicozooError], hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.failures = failures
        codes = {f.exit_code for f in failures}
        if ExitCode.DOWNLOAD in codes:
            self.exit_code = ExitCode.DOWNLOAD
        elif len(codes) == 1:
            self.exit_code = codes.pop()


def require(module: str, extra: str, *, package: str | None = None) -> Any:
    """Import optional ``module`` or raise :class:`MissingDependencyError` naming ``extra``.

    >>> require("json", "bench").__name__
    'json'
    >>> require("no_such_module_xyz", "bench")
    Traceback (most recent call last):
    ...
    picozoo.errors.MissingDependencyError: no_such_module_xyz is not installed; this needs the \
[bench] extra: pip install 'picozoo[bench]'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        broken = e.name is not None and e.name.split(".")[0] != top
        why = f" (importing {top} failed: {e})" if broken else ""
        raise MissingDependencyError(package or top, extra, why=why) from e
