"""The ``picozoo`` command line: a thin click layer over the picozoo library.

Commands are loaded lazily (``COMMANDS`` maps a name to ``module:attribute``) so that
``picozoo --help`` imports only click. Every error is rendered here, in one place, as one line
``picozoo: error: ...``: a :class:`~picozoo.errors.PicozooError` with its exit code, a click
usage error (bad option, missing argument, bad choice) with exit code 2, and anything else
mapped by :func:`error_for` (OpenCV 2, an engine 13, a full or read-only disk 12, any other
``OSError`` or crash 1); ``PICOZOO_DEBUG=1`` shows the traceback.

Signals: Ctrl-C/SIGINT (even when a shell started picozoo in the background, where SIGINT is
ignored by default) exits 130, SIGTERM exits 143, each after the ``finally`` blocks ran (a
benchmark's worker process is ended, nothing half-written is kept, no result is written).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import ExitCode, PicozooError
from .common import AliasOption

COMMANDS: dict[str, str] = {
    "list": "picozoo.cli.zoo:list_cmd",
    "show": "picozoo.cli.zoo:show_cmd",
    "pull": "picozoo.cli.fetch:pull_cmd",
    "lock": "picozoo.cli.fetch:lock_cmd",
    "verify": "picozoo.cli.fetch:verify_cmd",
    "cache": "picozoo.cli.fetch:cache_group",
    "mirror": "picozoo.cli.fetch:mirror_group",
    "convert": "picozoo.cli.convert:convert_cmd",
    "inspect": "picozoo.cli.convert:inspect_cmd",
    "infer": "picozoo.cli.detect:infer_cmd",
    "eval": "picozoo.cli.detect:eval_cmd",
    "bench": "picozoo.cli.bench:bench_cmd",
    "report": "picozoo.cli.bench:report_group",
}


class LazyGroup(click.Group):
    """A click group that imports each command's module only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: picozoo list --family picodet --filter 'map>30' --sort -map",
)
@click.option(
    "--registry",
    type=click.Path(dir_okay=False),
    help="Registry YAML to use instead of the packaged one [env: PICOZOO_REGISTRY].",
)
@click.option(
    "--cache",
    "cache_dir",
    cls=AliasOption,
    aliases=["--cache-dir"],
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Cache directory for every command [env: PICOZOO_CACHE; default: the platform "
    "cache dir]; commands also take --cache.",
)
@click.version_option(__version__, prog_name="picozoo")
@click.pass_context
def cli(ctx: click.Context, registry: str | None, cache_dir: str | None) -> None:
    """picozoo: find, download, verify, convert and benchmark PP-PicoDet models."""
    from ..settings import default_cache_dir
    from ..thirdparty import contain_third_party
    from .common import GroupOptions

    ctx.obj = GroupOptions(registry_path=registry, cache_dir=cache_dir)
    contain_third_party(Path(cache_dir).absolute() if cache_dir else default_cache_dir())


__all__ = ["COMMANDS", "Terminated", "cli", "error_for", "main"]

#: Commands whose interruption leaves a resumable partial download (``bench`` says what it
#: was doing: see :func:`picozoo.cli.bench.interrupted_message`).
DOWNLOADING = ("pull", "lock", "convert")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt`` (so every cleanup
    that handles an interruption runs), and rendered with exit code 143."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and render errors in one place."""
    args = sys.argv[1:] if argv is None else argv
    with _notes_to_stderr():
        _run(args)


def _run(args: list[str]) -> None:
    try:
        with _signals_raise():
            rv: Any = cli.main(args=args, prog_name="picozoo", standalone_mode=False)
    except PicozooError as e:
        _fail(f"error: {e}", e.exit_code, e)
    except (click.exceptions.Abort, KeyboardInterrupt) as e:  # click turns both into Abort
        if isinstance(e, Terminated) or isinstance(e.__cause__, Terminated):
            _fail(_interrupted(args, "terminated"), ExitCode.TERMINATED, e)
        _fail(_interrupted(args), ExitCode.INTERRUPTED, e)
    except click.exceptions.NoArgsIsHelpError as e:  # a bare group: its help, as click does
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _fail(f"error: {_click_message(e)}", e.exit_code, e)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitCode.FAILED)
    except Exception as e:  # the one error path: an exit code for what escaped the commands
        error = error_for(e)
        _fail(f"error: {error}", error.exit_code, e)
    sys.exit(rv if isinstance(rv, int) else ExitCode.OK)


def error_for(e: BaseException) -> PicozooError:
    """The one-line error (with its documented exit code) for an exception that is not a
    :class:`~picozoo.errors.PicozooError`: OpenCV's ``cv2.error`` is an input it cannot read
    (2); an exception raised inside an inference engine (ONNX Runtime, OpenVINO, MNN, ncnn,
    Paddle) is exit 13; a full disk (``ENOSPC``, ``EDQUOT``) or a read-only/forbidden path
    (``EROFS``, ``EACCES``, ``EPERM``) is exit 12 naming the path; any other ``OSError`` says
    the system's reason and the path (1); anything else is a picozoo bug (1).

    >>> import errno
    >>> str(error_for(OSError(errno.ENOSPC, "No space left on device", "/c/x")))[:40]
    'no space left on the disk holding /c/x ('
    >>> int(error_for(PermissionError(errno.EACCES, "Permission denied", "/ro/f")).exit_code)
    12
    >>> str(error_for(OSError(errno.EIO, "Input/output error", "/dev/sdz")))
    'Input/output error: /dev/sdz'
    >>> int(error_for(ValueError("x")).exit_code)
    1
    """
    from ..errors import EngineError, UsageError

    origin = _origin(e)
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    first = first[:300]
    if origin == "cv2":
        return UsageError(
            f"OpenCV cannot process this input: {first}",
            hint="check the image files and the model's input size",
        )
    if origin in _ENGINE_PACKAGES:
        return EngineError(
            f"{_ENGINE_PACKAGES[origin]} failed: {first}",
            hint="check that the model and its inputs fit this engine; PICOZOO_DEBUG=1 shows "
            "the traceback",
        )
    if isinstance(e, OSError):
        from ..hub.disk import disk_error

        where = e.filename if isinstance(e.filename, str) else None
        disk = disk_error(e, Path(where or "."))
        if disk is not None:
            if where is None:  # a write() names no file: say where picozoo writes
                disk.message = (
                    f"{e.strerror or 'cannot write'} while writing to the cache "
                    f"({_cache_dir()}) or an output file"
                )
            return disk
        reason = e.strerror or type(e).__name__
        return PicozooError(f"{reason}: {where}" if where else reason)
    if isinstance(e, MemoryError):
        return PicozooError(
            "out of memory", hint="use a smaller input, or free memory; PICOZOO_DEBUG=1 shows "
            "where"
        )  # fmt: skip
    return PicozooError(
        f"unexpected {type(e).__name__}: {first}",
        hint="this is a picozoo bug: rerun with PICOZOO_DEBUG=1 and report the traceback",
    )


def _cache_dir() -> str:
    from ..settings import default_cache_dir

    try:
        return str(default_cache_dir())
    except Exception:  # the settings may be what failed
        return "the cache"


#: Top-level packages of the inference engines (an exception raised in them is exit 13).
_ENGINE_PACKAGES = {
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
    "MNN": "MNN",
    "_mnncengine": "MNN",
    "ncnn": "ncnn",
    "paddle": "Paddle Inference",
}


def _origin(e: BaseException) -> str:
    """The top-level package an exception comes from: its type's module, else (a builtin type
    such as ``RuntimeError``) the module of the innermost frame that raised it."""
    module = type(e).__module__.split(".")[0]
    if module != "builtins":
        return module
    name, tb = "", e.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return name.split(".")[0]


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While the command runs: SIGTERM raises :class:`Terminated`, SIGINT ``KeyboardInterrupt``
    (also when it was ignored: a shell starts background jobs with SIGINT ignored, and
    ``kill -INT`` must still stop picozoo). The previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    before = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, terminated),
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
    }
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _notes_to_stderr() -> Iterator[None]:
    """While a command runs, print the library's INFO notes (download retries, mirror
    fallbacks: the ``picozoo`` logger) on stderr as ``picozoo: ...`` lines; the library stays
    quiet otherwise (and again afterwards, when ``main`` is called in-process)."""
    import logging

    class StderrNotes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(f"picozoo: {record.getMessage()}", err=True)

    logger = logging.getLogger("picozoo")
    handler, level = StderrNotes(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _interrupted(args: list[str], how: str = "interrupted") -> str:
    command = next((a for a in args if a in COMMANDS), "")
    if command == "bench":
        from .bench import interrupted_message

        return interrupted_message(how)
    if command in DOWNLOADING:
        return f"{how} (partial downloads are kept and resumed next time)"
    return f"{how} (nothing half-written was kept)"


def _click_message(e: click.ClickException) -> str:
    """A click error as one line, pointing at the command's ``--help`` for usage errors.

    >>> _click_message(click.UsageError("Missing argument 'MODEL|PATH'."))
    "Missing argument 'MODEL|PATH'."
    """
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


def _fail(message: str, code: int, exc: BaseException) -> None:
    if os.environ.get("PICOZOO_DEBUG") == "1":  # read here: settings may be what failed
        import traceback

        traceback.print_exception(exc)
    click.echo(f"picozoo: {message}", err=True)
    sys.exit(code)
