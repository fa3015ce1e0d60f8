"""Keep the files third-party libraries write on import inside picozoo's cache, not in ``$HOME``.

Importing them writes under the user's home: matplotlib its font cache
(``~/.cache/matplotlib``, ``~/.config/matplotlib``), Paddle ``~/.cache/paddle/dataset`` (from
``$HOME`` alone, no setting moves it), onnxruntime a telemetry device id
(``~/.cache/Microsoft/DeveloperTools``), OpenVINO ``~/intel/openvino_ga_cid``. picozoo writes
only to its cache and ``--out``, so :func:`contain_third_party` -- called once by each picozoo
process (the CLI, the bench worker) before any of them is imported -- points them at
``<cache>/.thirdparty/``. Nothing happens until one of them is first imported; then:

* ``matplotlib``: ``MPLCONFIGDIR`` (its config and cache folder) is set to
  ``.thirdparty/matplotlib``, unless the user set it;
* ``paddle``, ``onnxruntime``, ``openvino``: while the import runs, ``$HOME`` (and
  ``$XDG_CACHE_HOME``, unless the user set it) point to ``.thirdparty/home``, and are restored
  right after: what those imports create lands there, nothing else changes.

When the cache cannot hold that folder (read-only, not a folder), a temporary folder is used
and removed at exit. The folder is handed to picozoo's child processes (the bench worker, the
converters run in a child) in :data:`INHERITED`, so that importing picozoo there contains them
too (:func:`contain_inherited`, run by ``picozoo/__init__``). Library callers who want the same
call :func:`contain_third_party` themselves.

>>> import tempfile
>>> cache = Path(tempfile.mkdtemp())
>>> contain_third_party(cache)
>>> import matplotlib  # doctest: +SKIP
>>> os.environ["MPLCONFIGDIR"] == str(cache / THIRDPARTY / "matplotlib")  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

#: The folder under the cache root that holds what third-party libraries write.
THIRDPARTY = ".thirdparty"
#: Top-level modules whose first import writes under ``$HOME`` (or ``$XDG_CACHE_HOME``).
HOME_WRITERS = ("paddle", "onnxruntime", "openvino")
#: ... and the one that has a setting for it (``MPLCONFIGDIR``).
MATPLOTLIB = "matplotlib"

#: Internal: the ``.thirdparty`` folder of the picozoo process that started this one (not a
#: user setting; read only by :func:`contain_inherited`).
INHERITED = "_PICOZOO_THIRDPARTY_DIR"

_LOCK = threading.RLock()


def contain_third_party(cache_dir: Path) -> None:
    """Point third-party caches into ``cache_dir/.thirdparty`` when they are first imported
    (see the module docstring), in this process and in the ones it starts. A later call moves
    the folder as long as nothing has been put there yet."""
    _install(Path(cache_dir) / THIRDPARTY)


def contain_inherited() -> None:
    """In a child of a picozoo process that contained its third-party caches: the same."""
    folder = os.environ.get(INHERITED)
    if folder:
        _install(Path(folder))


def _install(root: Path) -> None:
    current = next((f for f in sys.meta_path if isinstance(f, _Container)), None)
    if current is None:
        sys.meta_path.insert(0, _Container(root))
    elif current.moved_to(root) is False:
        return
    os.environ[INHERITED] = str(root)


def _usable_root(root: Path) -> Path:
    """``root`` if it is (or can be made) a writable folder, else a temporary folder that is
    removed when the process exits."""
    import atexit
    import shutil
    import tempfile

    try:
        (root / "home").mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK | os.X_OK):
            return root
    except OSError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="picozoo-thirdparty-"))
    (tmp / "home").mkdir()
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return tmp


@contextlib.contextmanager
def _home_at(home: Path) -> Iterator[None]:
    """``$HOME`` (and an unset ``$XDG_CACHE_HOME``) pointing at ``home``, restored after."""
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CACHE_HOME")}
    os.environ["HOME"] = str(home)
    if saved["XDG_CACHE_HOME"] is None:
        os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Container:  # a meta path finder (importlib.abc is not imported: it costs ~40 ms)
    """Finds nothing itself: at the first import of matplotlib, sets ``MPLCONFIGDIR``; wraps
    the loader of the first import of each of :data:`HOME_WRITERS` so that its module runs with
    ``$HOME`` in ``root`` (:func:`_home_at`)."""

    def __init__(self, root: Path) -> None:
        self.wanted = {MATPLOTLIB, *HOME_WRITERS}
        self._root = root
        self._usable: Path | None = None

    def moved_to(self, root: Path) -> bool:
        """Use ``root`` instead, unless the folder is in use already (then False)."""
        if self._usable is not None:
            return False
        self._root = root
        return True

    @property
    def root(self) -> Path:
        if self._usable is None:
            self._usable = _usable_root(self._root)
        return self._usable

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.wanted:
            return None
        self.wanted.discard(fullname)  # once: the next finders do the finding
        if fullname == MATPLOTLIB:
            os.environ.setdefault("MPLCONFIGDIR", str(self.root / "matplotlib"))
            return None
        spec = _find_after(self, fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = cast("Loader", _ContainedLoader(spec.loader, self.root / "home"))
        return spec


def _find_after(
    finder: Any, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    """The spec the finders of ``sys.meta_path`` other than ``finder`` give, in their order
    (so that one that refuses the module, e.g. a test's blocker, is still obeyed)."""
    for other in list(sys.meta_path):
        find = getattr(other, "find_spec", None)
        if other is finder or find is None:
            continue
        spec: ModuleSpec | None = find(fullname, path, target)
        if spec is not None:
            return spec
    return None


class _ContainedLoader:  # a loader
    def __init__(self, loader: Any, home: Path) -> None:
        self.loader = loader
        self.home = home

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None:
            spec.loader = self.loader  # the module keeps its real loader (reloads, resources)
        module.__loader__ = self.loader
        with _LOCK, _home_at(self.home):
            self.loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self.loader, name)


__all__ = ["HOME_WRITERS", "INHERITED", "THIRDPARTY", "contain_inherited", "contain_third_party"]
