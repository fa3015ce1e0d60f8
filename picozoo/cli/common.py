"""Shared pieces of the CLI: the settings/store options, --format, output helpers, and the
one vocabulary every command speaks.

Every command gets an :class:`App` (settings built once from flags + environment + defaults,
the registry and the store, both loaded on first use). Commands that may download take
``--cache``, ``--mirror``, ``--offline`` and ``--lock`` (:func:`store_options`); the others
that read the cache take ``--cache`` and ``--lock``.

One name per concept: ``--format`` (human format ``table``), ``--postprocess/--no-postprocess``,
``--precision``, ``--input-size``, ``--cache`` and the ``MODEL|PATH`` placeholder. Old
spellings (``--report``, ``text``, ``--fp16``, ``--input-shape``, ``--cache-dir``) still work
as aliases that ``--help`` does not show (:class:`AliasOption`, :class:`AliasChoice`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..settings import Settings

if TYPE_CHECKING:
    from ..hub.registry import Registry
    from ..hub.store import Store

F = TypeVar("F", bound=Callable[..., Any])

#: The placeholder of an argument that is a model id or a file/folder path, in every command.
MODEL_OR_PATH = "MODEL|PATH"

#: Old value spellings of ``--format`` that still work (hidden from ``--help``).
FORMAT_ALIASES = {"text": "table"}


class FiniteFloat(click.FloatRange):
    """A number option that must be finite (``nan``, ``inf`` refused: click's ``FloatRange``
    lets ``nan`` through every bound), within ``min``/``max`` like ``FloatRange``.

    >>> FiniteFloat(min=1).convert("2.5", None, None)
    2.5
    >>> FiniteFloat(min=1).convert("nan", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: 'nan' is not a finite number.
    """

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


def bounded_threads(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of every ``--threads`` option: refuse counts beyond
    :func:`picozoo.threads.max_threads` (a few times the usable cores) with a
    :class:`~picozoo.errors.UsageError` (exit 2)."""
    from ..threads import check_threads

    if value is not None:
        check_threads(value if isinstance(value, tuple | list) else [value])
    return value


class AliasOption(click.Option):
    """An option whose old spellings (``aliases``) still work but are not shown in ``--help``
    nor in error messages.

    >>> opt = AliasOption(["--format", "fmt"], aliases=["--report"])
    >>> opt.opts, opt.get_error_hint(click.Context(click.Command("x")))
    (['--format', '--report'], "'--format'")
    """

    def __init__(
        self, param_decls: Sequence[str], *, aliases: Sequence[str] = (), **attrs: Any
    ) -> None:
        super().__init__([*param_decls, *aliases], **attrs)
        self.aliases = tuple(aliases)

    @contextmanager
    def _without_aliases(self) -> Iterator[None]:
        opts = self.opts
        self.opts = [o for o in opts if o not in self.aliases]
        try:
            yield
        finally:
            self.opts = opts

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        with self._without_aliases():
            return super().get_help_record(ctx)

    def get_error_hint(self, ctx: click.Context | None) -> str:
        with self._without_aliases():
            return super().get_error_hint(ctx)


class AliasChoice(click.Choice):
    """A choice that also accepts old spellings of some values (``aliases``: old -> new),
    shown nowhere.

    >>> AliasChoice(["table", "json"], {"text": "table"}).convert("text", None, None)
    'table'
    """

    def __init__(self, choices: Sequence[str], aliases: Mapping[str, str]) -> None:
        super().__init__(list(choices))
        self.aliases = dict(aliases)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value in self.aliases:
            value = self.aliases[value]
        return super().convert(value, param, ctx)


@dataclass
class GroupOptions:
    """The options of the ``picozoo`` group itself (``ctx.obj``)."""

    registry_path: str | None = None
    cache_dir: str | None = None


@dataclass
class App:
    """What a command works with: frozen settings, and the registry and store they select."""

    settings: Settings
    _registry: Registry | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from ..hub.registry import load_registry

            self._registry = load_registry(self.settings.registry_path)
        return self._registry

    @property
    def store(self) -> Store:
        if self._store is None:
            from ..hub.store import Store

            self._store = Store(self.settings)
        return self._store


def _make_app(**flags: Any) -> App:
    ctx = click.get_current_context()
    group = ctx.find_object(GroupOptions) or GroupOptions()
    settings = Settings.from_env(
        registry_path=group.registry_path,
        cache_dir=flags.pop("cache_dir", None) or group.cache_dir,
        **flags,
    )
    return App(settings)


def pass_app(f: F) -> F:
    """Pass an :class:`App` (settings from the group options + environment) as first argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(_make_app(), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def store_options(*, download: bool = True) -> Callable[[F], F]:
    """Add ``--cache`` and ``--lock`` (and, with ``download``, ``--mirror`` and ``--offline``)
    and pass the resulting :class:`App` as first argument."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {
                "cache_dir": kwargs.pop("cache_dir", None),
                "lock_path": kwargs.pop("lock_file", None),
            }
            if download:
                flags["mirrors"] = kwargs.pop("mirrors", ()) or None
                flags["offline"] = True if kwargs.pop("offline", False) else None
            return f(_make_app(**flags), *args, **kwargs)

        opts = [
            click.option(
                "--cache",
                "cache_dir",
                type=click.Path(file_okay=False),
                metavar="DIR",
                help="Cache directory [env: PICOZOO_CACHE; default: the platform cache dir].",
            ),
            click.option(
                "--lock",
                "lock_file",
                type=click.Path(dir_okay=False),
                metavar="FILE",
                help="Pins file of sha256/size [env: PICOZOO_LOCK; default: picozoo.lock in "
                "the cache].",
            ),
        ]
        if download:
            opts += [
                click.option(
                    "--mirror",
                    "mirrors",
                    multiple=True,
                    metavar="URL",
                    help="Download from this mirror instead of upstream (http(s)://, file:// "
                    "or a directory; repeatable, tried in order) [env: PICOZOO_MIRROR, "
                    "comma-separated].",
                ),
                click.option(
                    "--offline",
                    is_flag=True,
                    help="Use only the cache; open no connection [env: PICOZOO_OFFLINE=1].",
                ),
            ]
        for opt in reversed(opts):
            wrapper = opt(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def format_option(
    *choices: str, default: str = "table", aliases: Sequence[str] = ()
) -> Callable[[F], F]:
    """A ``--format`` option limited to ``choices`` (``text`` is an old name of ``table``;
    ``aliases``: old names of the option itself, e.g. ``--report``)."""
    return click.option(
        "--format",
        "fmt",
        cls=AliasOption,
        aliases=aliases,
        type=AliasChoice(choices, FORMAT_ALIASES if "table" in choices else {}),
        default=default,
        show_default=True,
        help="Output format (json is for scripts).",
    )


def postprocess_option(default: bool, help: str) -> Callable[[F], F]:
    """``--postprocess/--no-postprocess``: the one spelling of the post-processing switch."""
    return click.option(
        "--postprocess/--no-postprocess", default=default, show_default=True, help=help
    )


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def info(message: str) -> None:
    """Progress/warning text: always stderr, so stdout stays data only."""
    click.echo(message, err=True)
