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
and removed at exit. Library callers who want the same call it themselves.

>>> import tempfile
>>> cache = Path(tempfile.mkdtemp())
>>> contain_third_party(cache)
>>> import matplotlib  # doctest: +SKIP
>>> os.environ["MPLCONFIGDIR"] == str(cache / THIRDPARTY / "matplotlib")  # doctest: +SKIP
True
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: The folder under the cache root that holds what third-party libraries write.
THIRDPARTY = ".thirdparty"
#: Top-level modules whose first import writes under ``$HOME`` (or ``$XDG_CACHE_HOME``).
HOME_WRITERS = ("paddle", "onnxruntime", "openvino")
#: ... and the one that has a setting for it (``MPLCONFIGDIR``).
MATPLOTLIB = "matplotlib"

_LOCK = threading.RLock()


def contain_third_party(cache_dir: Path) -> None:
    """Point third-party caches into ``cache_dir/.thirdparty`` when they are first imported
    (see the module docstring). Only the first call in a process counts."""
    if not any(isinstance(f, _Container) for f in sys.meta_path):
        sys.meta_path.insert(0, _Container(Path(cache_dir) / THIRDPARTY))


def _usable_root(root: Path) -> Path:
    """``root`` if it is (or can be made) a writable folder, else a temporary folder that is
    removed when the process exits."""
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


class _Container(importlib.abc.MetaPathFinder):
    """Finds nothing itself: at the first import of matplotlib, sets ``MPLCONFIGDIR``; wraps
    the loader of the first import of each of :data:`HOME_WRITERS` so that its module runs with
    ``$HOME`` in ``root`` (:func:`_home_at`)."""

    def __init__(self, root: Path) -> None:
        self.wanted = {MATPLOTLIB, *HOME_WRITERS}
        self._root = root
        self._usable: Path | None = None

    @property
    def root(self) -> Path:
        if self._usable is None:
            self._usable = _usable_root(self._root)
        return self._usable

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.wanted:
            return None
        self.wanted.discard(fullname)  # once: the next finders do the finding
        if fullname == MATPLOTLIB:
            os.environ.setdefault("MPLCONFIGDIR", str(self.root / "matplotlib"))
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ContainedLoader(spec.loader, self.root / "home")
        return spec


class _ContainedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, home: Path) -> None:
        self.loader = loader
        self.home = home

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
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


__all__ = ["HOME_WRITERS", "THIRDPARTY", "contain_third_party"]
