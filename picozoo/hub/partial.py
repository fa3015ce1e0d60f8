"""The names of a partial download in ``<cache>/downloads/``: one place makes and parses them.

A download of URL key ``<key>`` streams into ``<key>.part`` (``<key>.part.<pid>``, one per
process, when cross-process locking is unavailable) with its resume validators beside it in
``<name>.json``. :mod:`picozoo.hub.download` writes them, :mod:`picozoo.hub.pull` discards them,
:mod:`picozoo.hub.maintenance` finds abandoned ones.

>>> p = PartialDownload(Path("/c/downloads/x.onnx-0123.part"))
>>> p.meta.name, p.key, p.pid, p.per_process(42).path.name
('x.onnx-0123.part.json', 'x.onnx-0123', None, 'x.onnx-0123.part.42')
>>> PartialDownload.parse(Path("/c/downloads/x.onnx-0123.part.42.json")).pid
42
>>> PartialDownload.parse(Path("/c/downloads/notes.txt")) is None
True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

#: ``<key>.part``: see :meth:`picozoo.hub.store.Store.partial`
PART = ".part"
META = ".json"


@dataclass(frozen=True)
class PartialDownload:
    """The bytes file of one partial download (``path``) and what belongs to it."""

    path: Path

    @classmethod
    def parse(cls, file: Path) -> PartialDownload | None:
        """The partial download a file in ``downloads/`` belongs to (its bytes or its
        validators); None for a file that is neither."""
        name = file.name.removesuffix(META)
        head, sep, tail = name.rpartition(f"{PART}.")
        if sep and head and tail.isdigit():
            return cls(file.with_name(name))
        if name.endswith(PART) and len(name) > len(PART):
            return cls(file.with_name(name))
        return None

    @property
    def meta(self) -> Path:
        """The resume validators (ETag, Last-Modified, total size) of this download."""
        return self.path.with_name(self.path.name + META)

    @property
    def key(self) -> str:
        """The URL key (see :func:`picozoo.hub.store.url_key`)."""
        return self.path.name.rpartition(PART)[0]

    @property
    def pid(self) -> int | None:
        """The process of a per-process partial download (None: the shared one)."""
        tail = self.path.name.rpartition(f"{PART}.")[2]
        return int(tail) if tail.isdigit() and not self.path.name.endswith(PART) else None

    def per_process(self, pid: int) -> PartialDownload:
        """This download's per-process variant (when locking is unavailable)."""
        return PartialDownload(self.path.with_name(f"{self.key}{PART}.{pid}"))

    def files(self) -> tuple[Path, Path]:
        return self.path, self.meta

    def discard(self) -> None:
        """Delete the bytes and the validators."""
        for p in self.files():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
