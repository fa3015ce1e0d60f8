"""The ``picozoo`` command line: a thin click layer over the picozoo library.

Commands are loaded lazily (``COMMANDS`` maps a name to ``module:attribute``) so that
``picozoo --help`` imports only click. Every error is rendered here, in one place, as one line
``picozoo: error: ...``: a :class:`~picozoo.errors.PicozooError` with its exit code, a click
usage error (bad option, missing argument, bad choice) with exit code 2; ``PICOZOO_DEBUG=1``
shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
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


__all__ = ["COMMANDS", "cli", "main"]

#: Commands whose interruption leaves a resumable partial download (``bench`` says what it
#: was doing: see :func:`picozoo.cli.bench.interrupted_message`).
DOWNLOADING = ("pull", "lock", "convert")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and render errors in one place."""
    args = sys.argv[1:] if argv is None else argv
    _notes_to_stderr()
    try:
        rv: Any = cli.main(args=args, prog_name="picozoo", standalone_mode=False)
    except PicozooError as e:
        _fail(f"error: {e}", e.exit_code, e)
    except (click.exceptions.Abort, KeyboardInterrupt) as e:
        _fail(_interrupted(args), ExitCode.INTERRUPTED, e)
    except click.exceptions.NoArgsIsHelpError as e:  # a bare group: its help, as click does
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _fail(f"error: {_click_message(e)}", e.exit_code, e)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitCode.FAILED)
    sys.exit(rv if isinstance(rv, int) else ExitCode.OK)


def _notes_to_stderr() -> None:
    """Print the library's INFO notes (download retries, mirror fallbacks: the ``picozoo``
    logger) on stderr as ``picozoo: ...`` lines; without this the library stays quiet."""
    import logging

    logger = logging.getLogger("picozoo")
    if any(getattr(h, "picozoo_cli", False) for h in logger.handlers):
        return

    class StderrNotes(logging.Handler):
        picozoo_cli = True

        def emit(self, record: logging.LogRecord) -> None:
            click.echo(f"picozoo: {record.getMessage()}", err=True)

    logger.addHandler(StderrNotes(logging.INFO))
    logger.setLevel(logging.INFO)


def _interrupted(args: list[str]) -> str:
    command = next((a for a in args if a in COMMANDS), "")
    if command == "bench":
        from .bench import interrupted_message

        return interrupted_message()
    if command in DOWNLOADING:
        return "interrupted (partial downloads are kept and resumed next time)"
    return "interrupted (nothing half-written was kept)"


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
