"""Small file-system helpers: atomic writes, streaming sha256, and copying while hashing.

>>> atomic_write_text(Path("/tmp/a.json"), "{}")        # doctest: +SKIP
>>> sha256_file(Path("/tmp/a.json"))                    # doctest: +SKIP
'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file in ``path``'s directory, fsync, then rename over ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (0o666 minus the
    umask), not ``mkstemp``'s private 0o600. Readers never see a half-written file.
    """
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
