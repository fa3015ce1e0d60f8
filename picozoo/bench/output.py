"""Write a report (``--out``) and a plot (``--plot``) without losing measured work.

:func:`check_writable` runs before anything is measured: a path whose folder cannot be created
or written is refused at once (:class:`~picozoo.errors.UsageError`, exit 2). When writing still
fails afterwards, :func:`write_outputs` saves what could not be written (and, for ``bench``,
the full results as JSON) to temporary files and raises one error naming them: exit 12
(:class:`~picozoo.errors.DiskError`) when the disk is full or read-only, else exit 2.

>>> import tempfile
>>> check_writable(Path(tempfile.gettempdir()) / "new-folder" / "r.md", "--out")
>>> check_writable(Path("/etc/hostname/r.md"), "--out")
Traceback (most recent call last):
...
picozoo.errors.UsageError: cannot write --out /etc/hostname/r.md: /etc/hostname is not a folder \
(choose a path in a writable folder)
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_output
from ..errors import DiskError, PicozooError, UsageError

#: errno values that mean "the disk", not "this path": exit 12 instead of 2.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
_HINT = "choose a path in a writable folder"


@dataclass(frozen=True)
class Output:
    """One file to write: the option that named it, its path, its bytes, what it is."""

    option: str  #: ``--out`` or ``--plot``
    path: Path
    data: bytes
    what: str = "report"


def check_writable(path: Path, option: str) -> None:
    """Raise :class:`~picozoo.errors.UsageError` unless ``path`` can be written: a character
    device or FIFO this process may write to (written in place), else the nearest existing
    ancestor of the file (of a symlink's target: the link is written through) must be a folder
    this process may write to (missing folders below it are created when writing). See
    :func:`picozoo.atomic.write_output`.

    >>> check_writable(Path("/dev/null"), "--out")
    """
    path = Path(path).expanduser()
    try:
        mode = os.stat(path).st_mode
    except OSError:  # new, or not statable: the folders are checked below, writing says why
        mode = stat.S_IFREG
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        if not os.access(path, os.W_OK):
            raise UsageError(f"cannot write {option} {path}: it is not writable", hint=_HINT)
        return
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a file, a device or a FIFO"
        raise UsageError(f"cannot write {option} {path}: it is {what}", hint=_HINT)
    path = Path(os.path.realpath(path))
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {option} {path}: {folder} is not a folder", hint=_HINT)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {option} {path}: {folder} is not writable", hint=_HINT)


def write_outputs(
    outputs: Sequence[Output],
    *,
    say: Callable[[str], None],
    results: Output | None = None,
) -> None:
    """Write every output with :func:`~picozoo.atomic.write_output` (files atomically, devices
    and FIFOs in place, nothing renamed over what is not a regular file; ``say`` reports
    each). If some cannot be written, each of those -- and ``results``, the full result
    document, unless it was written -- is saved to a temporary file instead, and one error
    names where.

    >>> write_outputs([Output("--out", Path("/etc/hostname/r.md"), b"| a |\\n")],
    ...               say=print)  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: cannot write --out /etc/hostname/r.md (File exists: \
/etc/hostname); the report is saved in /tmp/picozoo-r-k2x7.md (move it where you want it)
    """
    failed: list[tuple[Output, OSError]] = []
    for o in outputs:
        try:
            write_output(Path(o.path).expanduser(), o.data)
        except OSError as e:
            failed.append((o, e))
            continue
        say(f"wrote {o.path}")
    if not failed:
        return
    parts = [f"cannot write {o.option} {o.path} ({_why(o, e)}); {_aside(o)}" for o, e in failed]
    hint = "move it where you want it"
    if results is not None and not any(o.data == results.data for o in outputs):
        saved = _save_aside(results)
        if saved is not None:
            hint += f"; the results are in {saved}, for `picozoo report show`"
    disk = any(e.errno in DISK_ERRNOS for _, e in failed)
    cls: type[PicozooError] = DiskError if disk else UsageError
    raise cls("; ".join(parts), hint=hint) from failed[0][1]


def _why(o: Output, e: OSError) -> str:
    """The system's reason, naming the folder it is about when it is about one of ``o.path``'s
    folders (a file where a folder should be)."""
    why = e.strerror or str(e)
    if e.filename and Path(e.filename) in Path(o.path).expanduser().parents:
        why += f": {e.filename}"
    return why


def _aside(o: Output) -> str:
    """Save ``o`` elsewhere; say where (a report that cannot be saved anywhere goes to stdout)."""
    saved = _save_aside(o)
    if saved is not None:
        return f"the {o.what} is saved in {saved}"
    if o.what == "report":
        sys.stdout.buffer.write(o.data)
        sys.stdout.flush()
        return "the report is printed on stdout"
    return f"the {o.what} could not be saved anywhere"


def _save_aside(o: Output) -> Path | None:
    """``o.data`` in a new file in the temp folder (else the current one); None: neither."""
    stem, suffix = Path(o.path).stem, Path(o.path).suffix
    for folder in (tempfile.gettempdir(), os.getcwd()):
        try:
            fd, name = tempfile.mkstemp(prefix=f"picozoo-{stem[:40]}-", suffix=suffix, dir=folder)
            with os.fdopen(fd, "wb") as f:
                f.write(o.data)
        except OSError:
            continue
        return Path(name)
    return None
