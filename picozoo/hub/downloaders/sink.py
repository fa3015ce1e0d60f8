"""Where downloaded bytes go: the ``.part`` file (or nowhere: hash only), a sha256 computed
beside the I/O, and the content check on the file's first bytes.

>>> s = Sink(None)
>>> s.add(b"abc", None, None); s.offset, s.digest()[:8]
(3, 'ba7816bf')
"""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path
from typing import IO, Any

from ...atomic import copy_hashing, open_nofollow
from ..content import HEAD_BYTES
from ..partial import PartialDownload
from .base import CheckFn


class PipelinedSha256:
    """sha256 computed in a helper thread, so hashing overlaps the socket reads and file
    writes (hashlib and socket I/O both release the GIL).  Same interface as hashlib's.

    >>> h = PipelinedSha256(); h.update(b"abc"); h.hexdigest()[:8]
    'ba7816bf'
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._digest: str | None = None

    def _run(self) -> None:
        while True:
            chunk = self._q.get()
            if chunk is None:
                return
            self._h.update(chunk)

    def update(self, data: bytes) -> None:
        if self._digest is not None:
            raise ValueError("update() after hexdigest()")
        self._q.put(bytes(data))

    def hexdigest(self) -> str:
        if self._digest is None:
            self._q.put(None)
            self._thread.join()
            self._digest = self._h.hexdigest()
        return self._digest

    def close(self) -> None:
        """Stop the helper thread (the digest is then final)."""
        self.hexdigest()


class Sink:
    """The file being downloaded: bytes kept so far (``offset``), their running sha256, and
    the first :data:`~picozoo.hub.content.HEAD_BYTES` bytes for the content check."""

    def __init__(self, part: Path | None) -> None:
        self.part = part
        self.offset = 0
        self.h: Any = PipelinedSha256()
        self.head = bytearray()
        self.checked = False  # the head passed the content check
        self.content_type: str | None = None

    def resume(self) -> None:
        """Continue after the bytes already in ``part`` (hashed again, head re-read)."""
        assert self.part is not None
        with open_nofollow(self.part, "rb") as f:
            self.offset = copy_hashing(f, None, hasher=self.h)[1]
        with open_nofollow(self.part, "rb") as f:
            self.head = bytearray(f.read(HEAD_BYTES))

    def reset(self) -> None:
        """Drop every byte kept (and the resume validators): the file starts over."""
        if self.part is not None:
            PartialDownload(self.part).discard()
        self.h.close()
        self.offset, self.h = 0, PipelinedSha256()
        self.head, self.checked = bytearray(), False

    def open(self) -> IO[bytes] | None:
        """The ``.part`` opened for appending (None when only hashing)."""
        return open_nofollow(self.part, "ab") if self.part is not None else None

    def add(self, chunk: bytes, out: IO[bytes] | None, check: CheckFn | None) -> None:
        """Keep ``chunk`` (the next bytes of the file) and run the content check once the
        head is complete."""
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
            if len(self.head) >= HEAD_BYTES:
                self.run_check(check)
        if out is not None:
            out.write(chunk)
        self.h.update(chunk)
        self.offset += len(chunk)

    def run_check(self, check: CheckFn | None) -> None:
        if check is not None and not self.checked:
            check(bytes(self.head), self.content_type)
        self.checked = True

    def digest(self) -> str:
        return str(self.h.hexdigest())

    def close(self) -> None:
        """Stop the hashing thread (a no-op after :meth:`digest`)."""
        self.h.close()
