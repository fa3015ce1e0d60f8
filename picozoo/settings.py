"""picozoo's settings: built once (flags + environment + defaults), frozen, passed down.

This is the only module that reads picozoo's environment variables. The CLI builds one
:class:`Settings` per command from its flags; library callers build their own with
:meth:`Settings.from_env` (or the constructor) and pass it on.

>>> s = Settings.from_env({"PICOZOO_CACHE": "/tmp/zoo", "PICOZOO_MIRROR": "http://m.lan/pp"})
>>> str(s.cache_dir), s.mirrors, s.offline, str(s.pins_path)
('/tmp/zoo', ('http://m.lan/pp',), False, '/tmp/zoo/picozoo.lock')
>>> s.with_overrides(offline=True).offline
True
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

#: Every environment variable picozoo reads, and what it sets.
ENV_VARS: dict[str, str] = {
    "PICOZOO_CACHE": "cache directory (default: the platform cache dir + /picozoo)",
    "PICOZOO_REGISTRY": "registry YAML to use instead of the packaged one",
    "PICOZOO_MIRROR": "comma-separated mirrors tried in order instead of upstream",
    "PICOZOO_OFFLINE": "1: open no connection, serve only verified cache entries",
    "PICOZOO_LOCK": "pins file (default: picozoo.lock in the cache)",
    "PICOZOO_TIMEOUT": "network timeout in seconds (connect: at most 10)",
    "PICOZOO_RETRIES": "consecutive failed attempts per source before giving up",
    "PICOZOO_BACKOFF": "first retry back-off in seconds (doubles each time, at most 30)",
    "PICOZOO_MIN_SPEED": "bytes/s below which (for PICOZOO_MIN_SPEED_TIME) an attempt fails",
    "PICOZOO_MIN_SPEED_TIME": "seconds of too-slow transfer before an attempt fails (default 30)",
    "PICOZOO_MAX_UNPACK_RATIO": "largest unpacked size as a multiple of the archive size",
    "PICOZOO_MAX_UNPACK_BYTES": "largest unpacked size of one archive, in bytes",
    "PICOZOO_MAX_PIXELS": "largest image infer/eval decode (pixels; unset/0: 100000000)",
    "PICOZOO_MAX_ANNOTATION_BYTES": "largest annotation JSON eval reads (bytes; unset/0: 512 MiB)",
    "PICOZOO_LOCKING": "cross-process mutex: auto (OS file lock), soft (lock file), none",
    "PICOZOO_LITE_OPT": "paddle_lite_opt executable for convert --to lite",
    "PICOZOO_LITE_PYTHON": "Python 3.7-3.10 for the managed paddle_lite_opt (convert --to lite)",
    "PICOZOO_DEBUG": "1: show tracebacks",
    "PICOZOO_MAX_RESULT_BYTES": "largest bench result JSON `report` reads (bytes; unset/0: 16 MiB)",
}
PINS_NAME = "picozoo.lock"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class NetworkSettings:
    """How downloads behave."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5  #: consecutive failures without progress before giving up on a source
    backoff: float = 0.5  #: first back-off in seconds, doubled per failure, capped at 30 s
    max_attempts: int = 100
    min_speed: float = 1024.0  #: bytes/s; slower than this for min_speed_time fails the attempt
    min_speed_time: float = 30.0


@dataclass(frozen=True)
class UnpackLimits:
    """How large an archive may unpack (checked from member headers before writing)."""

    max_ratio: float = 50.0  #: unpacked size / archive size
    max_bytes: int = 8 << 30  #: absolute cap per archive (8 GiB)


@dataclass(frozen=True)
class InputLimits:
    """How large an input ``infer``/``eval`` reads may be (checked before decoding)."""

    max_pixels: int = 100_000_000  #: width x height of one image, from its header (100 MP)
    max_annotation_bytes: int = 512 << 20  #: one COCO annotation JSON (512 MiB)


@dataclass(frozen=True)
class Settings:
    """Everything a picozoo command needs to know about its environment."""

    cache_dir: Path = field(default_factory=lambda: default_cache_dir({}))
    registry_path: Path | None = None
    mirrors: tuple[str, ...] = ()
    offline: bool = False
    lock_path: Path | None = None  #: the pins file; None: ``picozoo.lock`` in the cache
    network: NetworkSettings = field(default_factory=NetworkSettings)
    unpack: UnpackLimits = field(default_factory=UnpackLimits)
    inputs: InputLimits = field(default_factory=InputLimits)
    locking: str = "auto"
    lite_opt: str | None = None
    #: the interpreter of the managed paddle_lite_opt environment (None: search; 3.7-3.10)
    lite_python: str | None = None
    debug: bool = False
    #: the largest ``picozoo.bench/1`` result file ``report show|merge`` reads (checked before)
    max_result_bytes: int = 16 << 20
    #: the Dask scheduler ``bench`` runs its plan on (``--cluster``; None: this machine)
    cluster: str | None = None

    @property
    def pins_path(self) -> Path:
        """The pins file in force: ``--lock FILE`` or ``<cache>/picozoo.lock``."""
        return self.lock_path if self.lock_path is not None else self.cache_dir / PINS_NAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); ``overrides`` (flags) win when
        they are not None."""
        env = os.environ if environ is None else environ
        base = cls(
            cache_dir=default_cache_dir(env),
            registry_path=_path(env.get("PICOZOO_REGISTRY")),
            mirrors=split_mirrors(env.get("PICOZOO_MIRROR", "")),
            offline=env.get("PICOZOO_OFFLINE", "").strip().lower() in _TRUE,
            lock_path=_path(env.get("PICOZOO_LOCK")),
            network=_network(env),
            unpack=_unpack(env),
            inputs=_inputs(env),
            locking=_locking(env.get("PICOZOO_LOCKING", "")),
            lite_opt=env.get("PICOZOO_LITE_OPT") or None,
            lite_python=env.get("PICOZOO_LITE_PYTHON") or None,
            debug=env.get("PICOZOO_DEBUG", "") == "1",
            max_result_bytes=int(_number(env, "PICOZOO_MAX_RESULT_BYTES", integer=True) or 0)
            or cls.max_result_bytes,
            cluster=env.get("PICOZOO_CLUSTER") or None,
        )
        settings = base.with_overrides(**overrides)
        named = "--cache" if overrides.get("cache_dir") else "PICOZOO_CACHE"
        check_cache_dir(settings.cache_dir, named if env.get("PICOZOO_CACHE") or
                        overrides.get("cache_dir") else "the cache")  # fmt: skip
        return settings

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced (None values are ignored; mirrors may be one
        comma-separated string or a sequence; paths may be strings)."""
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "mirrors":
                value = split_mirrors(value)
                if not value:
                    continue
            elif key in ("cache_dir", "registry_path", "lock_path"):
                value = _path(value)
            changes[key] = value
        return dataclasses.replace(self, **changes) if changes else self


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$PICOZOO_CACHE``, else the platform's user cache dir + ``picozoo`` (platformdirs).

    >>> str(default_cache_dir({"PICOZOO_CACHE": "/tmp/zoo"}))
    '/tmp/zoo'
    """
    env = os.environ if environ is None else environ
    if env.get("PICOZOO_CACHE"):
        return Path(env["PICOZOO_CACHE"]).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("picozoo", appauthor=False))


def check_cache_dir(path: Path, named: str = "the cache") -> None:
    """Refuse a cache path that is, or lies under, something other than a folder (it is
    created when missing): a :class:`~picozoo.errors.UsageError` (exit 2) naming ``named``
    (``PICOZOO_CACHE``, ``--cache``), instead of a ``NotADirectoryError`` in the first write.

    >>> check_cache_dir(Path("/nonexistent/zoo"))
    >>> check_cache_dir(Path("/etc/hostname/zoo"), "PICOZOO_CACHE")
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: PICOZOO_CACHE /etc/hostname/zoo: /etc/hostname is a file, not a \
folder (point it at a folder; a missing one is created)
    """
    import stat

    for p in (path, *path.parents):
        try:
            mode = os.stat(p).st_mode
        except (FileNotFoundError, NotADirectoryError):  # missing, or under a file: look up
            continue
        except OSError as e:
            raise UsageError(
                f"{named} {path}: {e.strerror}", hint="point it at a folder you can use"
            ) from e
        if not stat.S_ISDIR(mode):
            what = "a file" if stat.S_ISREG(mode) else "not a folder"
            raise UsageError(
                f"{named} {path}: {p} is {what}" + (", not a folder" if what == "a file" else ""),
                hint="point it at a folder; a missing one is created",
            )
        return


def split_mirrors(mirrors: str | Sequence[str] | None) -> tuple[str, ...]:
    """Mirrors as a tuple; strings may be comma-separated.

    >>> split_mirrors("http://a/pp, /srv/zoo,")
    ('http://a/pp', '/srv/zoo')
    """
    if not mirrors:
        return ()
    items = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    return tuple(m.strip() for item in items for m in str(item).split(",") if m.strip())


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value).expanduser().absolute() if value else None


def _number(env: Mapping[str, str], name: str, *, integer: bool = False) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError as e:
        kind = "a whole number" if integer else "a number"
        raise UsageError(
            f"{name}={raw!r} is not {kind}", hint=f"set {name} to {kind} >= 0, or unset it"
        ) from e
    if not math.isfinite(value) or value < 0 or (name == "PICOZOO_TIMEOUT" and value == 0):
        raise UsageError(
            f"{name}={raw!r} is out of range",
            hint=f"set {name} to a finite number {'> 0' if name == 'PICOZOO_TIMEOUT' else '>= 0'}",
        )
    return value


def _network(env: Mapping[str, str]) -> NetworkSettings:
    n = NetworkSettings()
    timeout = _number(env, "PICOZOO_TIMEOUT")
    retries = _number(env, "PICOZOO_RETRIES", integer=True)
    backoff = _number(env, "PICOZOO_BACKOFF")
    min_speed = _number(env, "PICOZOO_MIN_SPEED")
    min_speed_time = _number(env, "PICOZOO_MIN_SPEED_TIME")
    return NetworkSettings(
        connect_timeout=min(timeout, n.connect_timeout) if timeout else n.connect_timeout,
        read_timeout=timeout or n.read_timeout,
        retries=int(retries) if retries is not None else n.retries,
        backoff=backoff if backoff is not None else n.backoff,
        min_speed=min_speed if min_speed is not None else n.min_speed,
        min_speed_time=min_speed_time if min_speed_time is not None else n.min_speed_time,
    )


def _unpack(env: Mapping[str, str]) -> UnpackLimits:
    u = UnpackLimits()
    ratio = _number(env, "PICOZOO_MAX_UNPACK_RATIO")
    cap = _number(env, "PICOZOO_MAX_UNPACK_BYTES", integer=True)
    return UnpackLimits(
        max_ratio=ratio if ratio is not None else u.max_ratio,
        max_bytes=int(cap) if cap is not None else u.max_bytes,
    )


def _inputs(env: Mapping[str, str]) -> InputLimits:
    d = InputLimits()
    pixels = _number(env, "PICOZOO_MAX_PIXELS", integer=True)
    ann = _number(env, "PICOZOO_MAX_ANNOTATION_BYTES", integer=True)
    return InputLimits(
        max_pixels=int(pixels) if pixels else d.max_pixels,
        max_annotation_bytes=int(ann) if ann else d.max_annotation_bytes,
    )


def _locking(value: str) -> str:
    mode = value.strip().lower() or "auto"
    mode = {"flock": "auto", "excl": "soft"}.get(mode, mode)  # names of picozoo <= 0.1
    if mode not in ("auto", "soft", "none"):
        raise UsageError(
            f"PICOZOO_LOCKING={value!r} is not a locking mode", hint="use auto, soft or none"
        )
    return mode
