"""A cross-process mutex per artifact, from the ``filelock`` library.

Modes (``Settings.locking``, env ``PICOZOO_LOCKING``):

* ``auto`` - an OS lock (``fcntl``/``msvcrt``) on the file; the kernel drops it when the holder
  dies, so a crash never leaves a stale lock;
* ``soft`` - a lock file created with ``O_EXCL`` recording its owner; a lock whose owner
  process is gone is broken (for file systems without OS locks);
* ``none`` - no locking. Correctness never depends on the mutex: each process then downloads
  to its own ``.part`` and blobs are content-addressed, so the result is the same.

A symlink (or anything but a regular file) planted at the mutex path is refused with
:class:`~picozoo.errors.TamperedStoreError` instead of being opened, so taking a mutex never
writes outside its folder.

>>> with mutex(Path("/tmp/picozoo-doctest.lock"), mode="auto") as exclusive:
...     exclusive
True
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..atomic import check_not_planted, tampered
from ..errors import MutexTimeoutError


@contextlib.contextmanager
def mutex(
    path: Path,
    *,
    mode: str = "auto",
    timeout: float = 3600.0,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[bool]:
    """Hold the mutex at ``path``; yields whether real locking was obtained.

    ``on_wait`` is called once if another process holds it and we have to wait.
    """
    if mode == "none":
        yield False
        return
    import filelock

    path.parent.mkdir(parents=True, exist_ok=True)
    check_not_planted(path)  # a lock file is a plain file, or absent
    cls = filelock.SoftFileLock if mode == "soft" else filelock.FileLock
    lock = cls(str(path), thread_local=False)
    try:
        _acquire(lock, path, 0)
    except filelock.Timeout:
        if on_wait is not None:
            on_wait()
        try:
            _acquire(lock, path, timeout)
        except filelock.Timeout as e:
            raise MutexTimeoutError(path, timeout) from e
    try:
        yield True
    finally:
        lock.release()


def _acquire(lock: Any, path: Path, timeout: float) -> None:
    try:
        lock.acquire(timeout=timeout)
    except OSError as e:  # a link planted after the check (filelock opens with O_NOFOLLOW)
        if e.errno == errno.ELOOP:
            raise tampered(path) from e
        raise


def is_held(path: Path, *, mode: str = "auto") -> bool:
    """True when another process holds the mutex at ``path`` right now."""
    if mode == "none" or not path.exists():
        return False
    try:
        with mutex(path, mode=mode, timeout=0):
            return False
    except MutexTimeoutError:
        return True
