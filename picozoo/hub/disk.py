"""Full and read-only disks, said in one line with what to free or change (downloads,
unpacking and the store's writes all report them this way).

>>> disk_error(OSError(errno.ENOENT, "No such file"), Path("/c")) is None
True
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

from ..errors import DiskError


def disk_error(
    e: OSError, path: Path, *, need: int | None = None, kept: str = ""
) -> DiskError | None:
    """The :class:`DiskError` for a full or read-only disk (``None`` for any other error):
    one line naming the path (``e.filename``, else ``path``) and what to free or change.

    >>> disk_error(OSError(errno.EROFS, "Read-only file system"), Path("/c")).message
    'cannot write to /c: Read-only file system'
    """
    where = Path(e.filename) if isinstance(e.filename, str) else path
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        from .maintenance import human_size

        free = None
        with contextlib.suppress(OSError):
            free = _disk_free(where)
        amount = f"{human_size(need)} or more" if need else "space"
        return DiskError(
            f"no space left on the disk holding {where}"
            + (f" ({human_size(free)} free)" if free is not None else ""),
            hint=f"free {amount} there (`picozoo cache prune` drops unused files) or use "
            "--cache DIR/PICOZOO_CACHE on a larger disk" + (f"; {kept}" if kept else ""),
        )
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DiskError(
            f"cannot write to {where}: {e.strerror or 'read-only'}",
            hint="make it writable, or use --cache DIR/PICOZOO_CACHE (and --lock FILE) on a "
            "writable disk",
        )
    return None


def _disk_free(path: Path) -> int:
    import shutil

    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
