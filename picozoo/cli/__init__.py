"""The ``picozoo`` command line: a thin click layer over the picozoo library.

Commands are loaded lazily (``COMMANDS`` maps a name to ``module:attribute``) so that
``picozoo --help`` imports only click. Every :class:`~picozoo.errors.PicozooError` is rendered
here, in one place, as a one-line message; ``PICOZOO_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import PicozooError

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
    envvar="PICOZOO_REGISTRY",
    help="Registry YAML to use instead of the packaged one [env: PICOZOO_REGISTRY].",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    envvar="PICOZOO_CACHE",
    help="Cache directory [env: PICOZOO_CACHE; default: the platform cache dir].",
)
@click.version_option(__version__, prog_name="picozoo")
@click.pass_context
def cli(ctx: click.Context, registry: str | None, cache_dir: str | None) -> None:
    """picozoo: find, download, verify, convert and benchmark PP-PicoDet models."""
    from .common import Options

    ctx.obj = Options(registry_path=registry, cache_dir=cache_dir)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and render errors in one place."""
    try:
        rv: Any = cli.main(args=argv, prog_name="picozoo", standalone_mode=False)
    except PicozooError as e:
        _fail(f"error: {e}", e.exit_code, e)
    except click.exceptions.Abort as e:
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            _fail("interrupted (partial downloads are kept and resumed next time)", 130, e)
        _fail("interrupted", 130, None)
    except KeyboardInterrupt as e:
        _fail("interrupted (partial downloads are kept and resumed next time)", 130, e)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int, exc: BaseException | None) -> None:
    if exc is not None and os.environ.get("PICOZOO_DEBUG") == "1":
        import traceback

        traceback.print_exception(exc)
    click.echo(f"picozoo: {message}", err=True)
    sys.exit(code)
