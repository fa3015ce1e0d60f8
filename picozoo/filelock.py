"""A cross-process exclusive lock on a file, with stale-lock handling.

Modes (``$PICOZOO_LOCKING``, default ``auto``):

* ``flock`` - ``fcntl.flock`` on ``<path>``; the kernel drops it when the holder dies, so a
  crashed process never leaves a stale lock.
* ``excl``  - an ``O_CREAT|O_EXCL`` lock file holding ``pid host time``; the holder refreshes
  its mtime every few seconds; a lock whose pid is dead (same host) or whose mtime is older than
  ``stale_after`` seconds is broken.  Used where ``flock`` is unavailable (some network file
  systems) and in tests.
* ``none``  - no locking.  Callers must then stay correct on their own (picozoo does: each
  process downloads to its own ``.part`` and blobs are content-addressed).

>>> with FileLock(Path("/tmp/x.lock")) as lk:      # doctest: +SKIP
...     lk.exclusive
True
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .errors import PicozooError

ENV_LOCKING = "PICOZOO_LOCKING"
MODES = ("auto", "flock", "excl", "none")


class LockTimeoutError(PicozooError):
    """Another process held the lock for longer than we were willing to wait."""

    def __init__(self, path: Path, waited: float) -> None:
        super().__init__(
            f"gave up waiting {waited:.0f}s for lock {path}",
            hint="another picozoo process is using this artifact; retry later, or delete the "
            "lock file if no picozoo process is running",
        )


def locking_mode() -> str:
    mode = os.environ.get(ENV_LOCKING, "auto").strip().lower() or "auto"
    return mode if mode in MODES else "auto"


class FileLock:
    """Exclusive lock on ``path``; ``exclusive`` tells whether real locking was obtained."""

    def __init__(
        self,
        path: Path,
        *,
        timeout: float = 3600.0,
        stale_after: float = 120.0,
        mode: str | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.stale_after = stale_after
        self.mode = mode or locking_mode()
        self.on_wait = on_wait
        self.exclusive = False
        self._fd: int | None = None
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self.mode_used = "none"

    # -- public -------------------------------------------------------------------------------
    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = self.mode
        if mode == "none":
            return self
        if mode in ("auto", "flock"):
            try:
                import fcntl  # noqa: F401
            except ImportError:
                mode = "excl"
            else:
                if self._acquire_flock():
                    return self
                mode = "excl"  # flock unsupported on this file system
        self._acquire_excl()
        return self

    def release(self) -> None:
        if self._beat is not None:
            self._stop.set()
            self._beat.join(timeout=5)
            self._beat = None
        if self._fd is not None:
            if self.mode_used == "excl" and self._still_ours():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            os.close(self._fd)  # also releases a flock
            self._fd = None
        self.exclusive = False

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # -- flock --------------------------------------------------------------------------------
    def _acquire_flock(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    return False
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
            if time.monotonic() > deadline:
                os.close(fd)
                raise LockTimeoutError(self.path, self.timeout)
            if not waited and self.on_wait:
                self.on_wait()
            waited = True
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, _owner().encode())
        self._fd, self.exclusive, self.mode_used = fd, True, "flock"
        return True

    # -- O_EXCL lock file ---------------------------------------------------------------------
    def _acquire_excl(self) -> None:
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._break_if_stale():
                    continue
                if time.monotonic() > deadline:
                    raise LockTimeoutError(self.path, self.timeout) from None
                if not waited and self.on_wait:
                    self.on_wait()
                waited = True
                time.sleep(0.05)
                continue
            os.write(fd, _owner().encode())
            self._fd, self.exclusive, self.mode_used = fd, True, "excl"
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()
            return

    def _still_ours(self) -> bool:
        """False if our lock file was judged stale and replaced by another process's."""
        try:
            parts = self.path.read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            return False
        return bool(parts) and parts[0] == str(os.getpid())

    def _heartbeat(self) -> None:
        interval = max(0.5, self.stale_after / 4)
        while not self._stop.wait(interval):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def _break_if_stale(self) -> bool:
        """Remove the lock file if its holder is gone; True if it was removed."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if not is_stale(text, age, self.stale_after):
            return False
        # Rename first so that two processes breaking the same stale lock cannot both succeed
        # and then remove a fresh lock taken in between.
        grave = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, grave)
        except OSError:
            return False
        with contextlib.suppress(OSError):
            if is_stale(grave.read_text(encoding="utf-8", errors="replace"), age, self.stale_after):
                grave.unlink()
                return True
            os.link(grave, self.path)  # not the file we judged: put it back, never clobbering
            grave.unlink()
        return False


def _owner() -> str:
    return f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n"


def is_stale(owner_text: str, age: float, stale_after: float) -> bool:
    """Judge an ``excl`` lock file: dead pid on this host, unreadable content, or too old."""
    parts = owner_text.split()
    if age > stale_after:
        return True
    if len(parts) < 2 or not parts[0].isdigit():
        return age > 5  # half-written by a process that died while creating it
    pid, host = int(parts[0]), parts[1]
    if host != socket.gethostname():
        return False
    return not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True
