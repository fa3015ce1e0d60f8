"""Capture everything a native tool prints (C++ and Python), so stdout stays data only.

>>> with captured_output() as out:
...     print("noise")
>>> out.text.strip()
'noise'
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Where a child process of :mod:`picozoo.native` keeps what it captured (the parent reads it
#: when a native tool kills the child inside the capture).
KEEP_DIR = "PICOZOO_CAPTURE_DIR"


@dataclass
class Captured:
    text: str = ""

    def tail(self, lines: int = 5) -> str:
        """The last non-empty lines, with terminal colour codes removed."""
        import re

        clean = re.sub(r"\x1b\[[0-9;]*m", "", self.text)
        kept = [ln.strip() for ln in clean.splitlines() if ln.strip()]
        return "\n".join(kept[-lines:])


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Redirect file descriptors 1 and 2 and ``sys.stdout``/``sys.stderr`` into ``.text``."""
    result = Captured()
    buf = io.StringIO()
    keep = os.environ.get(KEEP_DIR)
    with (
        tempfile.NamedTemporaryFile(mode="w+b", dir=keep, prefix="captured-", delete=False)
        if keep
        else tempfile.TemporaryFile(mode="w+b")
    ) as tmp:
        saved: list[tuple[int, int]] = []
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:
                continue
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        for fd, _ in saved:
            os.dup2(tmp.fileno(), fd)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield result
        finally:
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            tmp.seek(0)
            native = tmp.read().decode("utf-8", errors="replace")
            result.text = buf.getvalue() + native


def quiet_import(name: str) -> Any:
    """Import module ``name`` with what it prints captured (MNN prints the CPU's features on
    stdout when imported).

    >>> quiet_import("json").__name__
    'json'
    """
    import importlib

    with captured_output():
        return importlib.import_module(name)
