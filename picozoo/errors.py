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
    DOWNLOAD = 4  #: a download failed at every source, or bench --cluster's scheduler is down
    ARCHIVE = 5  #: an archive or downloaded file was refused (unsafe, corrupt, wrong content)
    INTEGRITY = 6  #: a hash does not match its pin, or `verify` found a problem
    OFFLINE = 7  #: offline mode and the artifact is not in the cache
    NOT_CACHED = 8  #: the command needs something that has not been pulled/converted
    CONVERSION = 9  #: a conversion step failed
    PARITY = 10  #: a converted model's outputs disagree with its source's
    MISSING_DEPENDENCY = 11  #: an optional package or external tool is not installed
    DISK = 12  #: the disk is full or the cache is read-only
    ENGINE = 13  #: an inference engine cannot load or run a model
    INTERRUPTED = 130  #: Ctrl-C (SIGINT)
    TERMINATED = 143  #: SIGTERM (128 + 15, as a shell reports it)


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


class InferConfigError(ModelFileError):
    """An ``infer_cfg.yml`` picozoo refuses (not strict YAML, or a field out of range).

    Exit 2 as it is (a file the user gave: ``--config``, a model folder);
    :meth:`in_artifact` makes it the exit-5 refusal of a pulled tarball's config.

    >>> e = InferConfigError("infer_cfg.yml", "must be 0-4, got 99", field="Preprocess[0].interp")
    >>> str(e).split(" (")[0]
    "infer_cfg.yml: field 'Preprocess[0].interp': must be 0-4, got 99"
    >>> int(e.in_artifact("picodet-s-416 inference").exit_code)
    5
    """

    def __init__(self, path: str, problem: str, *, field: str | None = None) -> None:
        where = f"{path}: field {field!r}" if field else path
        super().__init__(
            f"{where}: {problem}",
            hint="fix the file, or give the infer_cfg.yml exported with the model",
        )
        self.path, self.problem, self.field = path, problem, field

    def in_artifact(self, label: str) -> BadArchiveError:
        """The same refusal for the config inside a pulled tarball (``label``)."""
        err = BadArchiveError(
            f"{label}: {self.message}",
            hint="nothing runs it: check the mirror/registry, or give a good infer_cfg.yml "
            "with --config",
        )
        err.__cause__ = self
        return err


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


class ClusterUnreachableError(PicozooError, ConnectionError):
    """The Dask scheduler of ``bench --cluster`` does not answer (exit 4, like a download
    that failed at every source: nothing was fetched, nothing ran)."""

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


class PrecisionUnavailableError(EngineError):
    """The engine computes in another precision than the one asked for, on this CPU (read
    back after loading): ``infer``/``eval`` refuse to label a result with a precision that did
    not run, as ``bench`` skips such a cell."""


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


#: a package a command needs: (module to import, the extras that install it (the first is
#: named when none of them is already named), the pip package when it is not the module)
Need = tuple[str, tuple[str, ...], str | None]


def require_all(needs: Any, *, load: Any = None) -> None:
    """Import every module of ``needs`` (:data:`Need` s), as :func:`require` does one, with
    ``load`` (default :func:`importlib.import_module`; :func:`picozoo.capture.quiet_import`
    keeps what a package prints on import off stdout, as MNN does) -- a package that is there
    but cannot be imported is as missing; raise one
    :class:`MissingDependencyError` naming every missing package and the fewest extras that
    install them all (an extra already named covers each package it installs), so that one
    ``pip install`` is enough.

    >>> require_all([("json", ("bench",), None)])
    >>> require_all([("no_such_xyz", ("bench", "eval"), None),
    ...              ("no_such_cv", ("eval",), "opencv-python-headless")])
    Traceback (most recent call last):
    ...
    picozoo.errors.MissingDependencyError: no_such_xyz and opencv-python-headless are not \
installed; this needs the [eval] extra: pip install 'picozoo[eval]'
    >>> require_all([("no_such_xyz", ("bench",), None), ("no_such_cv", ("eval",), "cv")])
    Traceback (most recent call last):
    ...
    picozoo.errors.MissingDependencyError: no_such_xyz and cv are not installed; this needs \
the [bench,eval] extras: pip install 'picozoo[bench,eval]'
    """
    import importlib

    load = load or importlib.import_module
    missing: list[tuple[str, tuple[str, ...]]] = []
    for module, extras, package in needs:
        try:
            load(module)
        except ImportError:
            if (package or module) not in [m for m, _ in missing]:
                missing.append((package or module, tuple(extras)))
    if not missing:
        return
    chosen: list[str] = []
    for _, extras in sorted(missing, key=lambda m: len(m[1])):  # the only way first
        if not any(e in chosen for e in extras):
            chosen.append(extras[0])
    chosen.sort()
    names = [m for m, _ in missing]
    what = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    extra = ",".join(chosen)
    err = MissingDependencyError(what, extra)
    if len(names) > 1 or len(chosen) > 1:
        err.message = (
            f"{what} {'are' if len(names) > 1 else 'is'} not installed; this needs the "
            f"[{extra}] extra{'s' if len(chosen) > 1 else ''}: pip install 'picozoo[{extra}]'"
        )
    raise err
