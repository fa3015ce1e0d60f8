"""Shared pieces of the CLI: global options, the --format option, output helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from ..paths import default_cache_dir
from ..registry import Registry, load_registry

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options of the ``picozoo`` group, available to every command as ``ctx.obj``."""

    registry_path: str | None = None
    cache_dir: str | None = None
    _registry: Registry | None = field(default=None, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry(self.registry_path)
        return self._registry

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


pass_options = click.make_pass_decorator(Options, ensure=True)


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """A ``--format`` option limited to ``choices``."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help="Output format (json is for scripts).",
    )


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def info(message: str) -> None:
    """Progress/warning text: always stderr, so stdout stays data only."""
    click.echo(message, err=True)
