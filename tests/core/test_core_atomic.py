"""Atomic writes: whole file or old file, with the permissions a plain write would give."""

from __future__ import annotations

import os
from pathlib import Path

from picozoo.atomic import atomic_write_bytes, atomic_write_text, sha256_file


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.md"
    atomic_write_text(target, "old\n")
    atomic_write_bytes(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]  # no temp file left


def test_sha256_file_of_empty_and_chunked_files(tmp_path: Path) -> None:
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    assert sha256_file(empty).startswith("e3b0c44298fc")
    big = tmp_path / "b"
    big.write_bytes(b"x" * 5000)
    import hashlib

    assert sha256_file(big, chunk=1024) == hashlib.sha256(b"x" * 5000).hexdigest()
