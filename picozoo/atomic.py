"""Small file-system helpers: atomic writes, the writer of user-chosen outputs, streaming
sha256, copying while hashing, opening without following symlinks, and the store's permissions
policy.

>>> atomic_write_text(Path("/tmp/a.json"), "{}")        # doctest: +SKIP
>>> sha256_file(Path("/tmp/a.json"))                    # doctest: +SKIP
'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'

Permissions policy (everything picozoo creates in the store, always minus the umask):
directories ``0o777`` (0755 with the usual umask 022), files picozoo rewrites (refs, pins,
manifests, partial downloads) ``0o666`` (0644), content files (blobs, unpacked files) read-only
for everyone ``0o444`` (``0o555`` for a file the archive marks executable).

>>> oct(policy_mode(READONLY_MODE) | 0o444)
'0o444'
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import TamperedStoreError

CHUNK = 1 << 20
#: Base modes of the permissions policy (see the module docstring); apply :func:`policy_mode`.
DIR_MODE, FILE_MODE, READONLY_MODE, READONLY_EXEC_MODE = 0o777, 0o666, 0o444, 0o555
_OPEN_FLAGS = {
    "rb": os.O_RDONLY,
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "xb": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file in ``path``'s directory, fsync, then rename over ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (0o666 minus the
    umask), not ``mkstemp``'s private 0o600. Readers never see a half-written file. A symlink
    at ``path`` is replaced, not followed (the store's files); a device, FIFO or folder there
    is refused (:class:`~picozoo.errors.TamperedStoreError`), never renamed over. Paths a user
    chose go through :func:`write_output`.
    """
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise tampered(path, "it is not a regular file")  # never renamed over
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_output(path: Path, data: bytes) -> Path:
    """Write ``data`` to a path the user chose (``--out``, ``--plot``, annotated images); return
    the file written.

    Nothing that is not a regular file is ever renamed over:

    * a new path or a regular file is written atomically (:func:`atomic_write_bytes`);
    * a symlink is written *through*, as ``cmd > link`` does: its target is replaced
      atomically and the link is kept (a user's ``latest.json -> runs/today.json`` stays a
      link; replacing it with a file would silently cut it). A link whose target is a device or
      a FIFO, or a ``/proc`` magic link to a file (``/proc/self/fd/1``, ``/dev/stdout``), is
      written to in place, as below;
    * a character device (``/dev/null``, a terminal) or a FIFO is written to in place, never
      created, truncated or replaced; a FIFO nobody reads is refused (``ENXIO``) instead of
      waiting forever;
    * a folder, a block device or a socket is refused.

    Refusals and failures are ``OSError`` s naming ``path`` (callers report them once).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> (d / "link").symlink_to("runs.json")
    >>> write_output(d / "link", b"{}") == d.resolve() / "runs.json", (d / "link").is_symlink()
    (True, True)
    >>> os.mkfifo(d / "fifo")
    >>> write_output(d / "fifo", b"x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    OSError: [Errno 6] no process is reading this FIFO: ...
    >>> write_output(d, b"x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    IsADirectoryError: [Errno 21] picozoo writes only files, devices and FIFOs; this is a ...
    >>> import shutil; shutil.rmtree(d)
    """
    path = Path(path)
    try:
        st = os.stat(path)  # through symlinks
    except FileNotFoundError:
        st = None  # new (or a dangling symlink: its target is created)
    target = Path(os.path.realpath(path))
    if st is not None and stat.S_ISREG(st.st_mode) and not _same_file(target, st):
        # a regular file without a name to replace: a /proc magic link (``/dev/stdout``
        # redirected to a file, or to a deleted one): written in place, as ``>`` would
        _write_in_place(path, st.st_mode, data)
        return path
    if st is None or stat.S_ISREG(st.st_mode):
        atomic_write_bytes(target, data)
        return target
    _write_in_place(path, st.st_mode, data)
    return path


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.stat(path), st)
    except OSError:
        return False


def _write_in_place(path: Path, mode: int, data: bytes) -> None:
    """Write ``data`` to the character device or FIFO at ``path`` (opened without creating,
    truncating or following a rename), or to the regular file a magic link names (truncated
    first); refuse anything else."""
    if stat.S_ISREG(mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        what = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
        why = f"picozoo writes only files, devices and FIFOs; this is {what}"
        raise OSError(code, why, str(path))
    flags = os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ENXIO and stat.S_ISFIFO(mode):
            raise OSError(e.errno, "no process is reading this FIFO", str(path)) from e
        raise
    try:
        st = os.fstat(fd)  # what was opened, not what was looked at
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise OSError(errno.EINVAL, "it changed while being opened", str(path))
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def policy_mode(base: int) -> int:
    """``base`` (one of the policy's modes) minus the process umask."""
    return base & ~_umask()


def open_nofollow(path: Path, mode: str = "rb") -> IO[bytes]:
    """Open a regular file without following a symlink at ``path`` (``O_NOFOLLOW``).

    ``mode`` is ``rb``, ``wb``, ``ab`` or ``xb``. A symlink, FIFO, device or directory at
    ``path``, or (when writing) a file with other hard links, raises
    :class:`~picozoo.errors.TamperedStoreError`: picozoo never creates those there, so something
    planted them to make picozoo write elsewhere.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> with open_nofollow(d / "a", "wb") as f: _ = f.write(b"x")
    >>> (d / "b").symlink_to(d / "a")
    >>> open_nofollow(d / "b", "ab")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    picozoo.errors.TamperedStoreError: refusing to use .../b: it is a symlink ...
    >>> import shutil; shutil.rmtree(d)
    """
    flags = _OPEN_FLAGS[mode] | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0), FILE_MODE)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR) or _is_link(path):
            raise tampered(path) from e
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise tampered(path, "it is not a regular file")
        if mode != "rb" and st.st_nlink > 1:
            raise tampered(path, f"it has {st.st_nlink} hard links")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, mode.replace("x", "w") if mode == "xb" else mode)
    except BaseException:
        os.close(fd)
        raise


def check_not_planted(path: Path, allow: str = "file") -> bool:
    """Whether ``path`` exists (``os.lstat``, no link followed) as what picozoo creates there:
    ``allow`` is ``file``, ``folder`` or ``any`` (either). A symlink or anything else (FIFO,
    device, a file where a folder belongs) raises :class:`~picozoo.errors.TamperedStoreError`.

    >>> check_not_planted(Path("/nonexistent/x.lock")), check_not_planted(Path("/"), "folder")
    (False, True)
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise tampered(path)
    is_file, is_folder = stat.S_ISREG(mode), stat.S_ISDIR(mode)
    if allow == "folder" and not is_folder:
        raise tampered(path, "it is a file where picozoo keeps a folder")
    if not (is_file or (is_folder and allow != "file")):
        raise tampered(path, "it is not a regular file")
    return True


def tampered(path: Path, why: str | None = None) -> TamperedStoreError:
    """The error for something planted at ``path`` that picozoo will not follow or overwrite."""
    if why is None:
        try:
            why = f"it is a symlink to {os.readlink(path)!r}"
        except OSError:
            why = "it is not what picozoo created there"
    return TamperedStoreError(
        f"refusing to use {path}: {why}",
        hint="picozoo never creates this; delete it, and check who else can write to the cache",
    )


def make_staging_dir(parent: Path, prefix: str) -> Path:
    """A new, empty folder ``parent/<prefix>XXXX`` created with ``mkdtemp`` (no planted link can
    be at its random name) and then given the policy's folder mode (0o777 minus the umask)."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, policy_mode(DIR_MODE))
    return tmp


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


@functools.cache
def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file, read in ``chunk``-sized blocks."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def copy_hashing(
    src: IO[bytes],
    dst: IO[bytes] | None,
    *,
    hasher: Any = None,
    on_chunk: Callable[[int], None] | None = None,
    limit: int | None = None,
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (None: hash only) in blocks; return (sha256 hex, bytes).

    With ``hasher`` (anything with ``update``), the bytes are fed to it and it is not
    finalised: the hex returned is then ``""``. ``on_chunk(bytes_so_far)`` is called after
    each block; ``limit`` stops with ``ValueError`` once more than that many bytes came.

    >>> import io
    >>> copy_hashing(io.BytesIO(b"abc"), io.BytesIO())[0][:8]
    'ba7816bf'
    """
    h = hasher if hasher is not None else hashlib.sha256()
    n = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        n += len(chunk)
        if limit is not None and n > limit:
            raise ValueError(f"more than {limit} bytes")
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        if on_chunk is not None:
            on_chunk(n)
    return (h.hexdigest() if hasher is None else ""), n
