"""``picozoo.lock``: the sha256 and size of every artifact URL picozoo has verified.

Upstream publishes no hashes, so the first verified download of a URL is recorded here and
every later download must match it (trust on first use, like ``pip --require-hashes`` lock
files).  The file is JSON, sorted, so it diffs well when kept in a project (``--lock FILE``)::

    {"version": 1, "artifacts": {"https://.../x.tar": {"sha256": "...", "size": 123}}}

>>> lock = Lock.load(Path("/tmp/project/picozoo.lock"))      # doctest: +SKIP
>>> lock.record("https://example.com/x.tar", "ab" * 32, 10); lock.save()   # doctest: +SKIP
>>> lock.get("https://example.com/x.tar").size                # doctest: +SKIP
10
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import PicozooError

LOCK_NAME = "picozoo.lock"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LockFileError(PicozooError):
    """The lock file exists but cannot be read or is malformed."""

    exit_code = 3


@dataclass(frozen=True)
class LockEntry:
    """A pinned artifact: its sha256 (hex) and size in bytes."""

    sha256: str
    size: int


def default_lock_path(cache_dir: Path) -> Path:
    """The lock file kept in the cache: ``cache_dir / "picozoo.lock"``."""
    return Path(cache_dir) / LOCK_NAME


class Lock:
    """An in-memory view of a lock file.  ``save`` merges with concurrent writers."""

    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None) -> None:
        self.path = Path(path)
        self.entries: dict[str, LockEntry] = dict(entries or {})
        self._changed: dict[str, LockEntry | None] = {}

    @classmethod
    def load(cls, path: Path) -> Lock:
        """Read ``path``; a missing file is an empty lock."""
        return cls(path, _read(Path(path)))

    def get(self, url: str) -> LockEntry | None:
        return self.entries.get(url)

    def record(self, url: str, sha256: str, size: int) -> None:
        """Pin ``url`` to ``sha256``/``size`` (kept in memory until :meth:`save`)."""
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        entry = LockEntry(sha256=sha256, size=int(size))
        self.entries[url] = entry
        self._changed[url] = entry

    def forget(self, url: str) -> None:
        self.entries.pop(url, None)
        self._changed[url] = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, url: object) -> bool:
        return url in self.entries

    def save(self) -> None:
        """Atomically write the lock, re-reading the file under a file lock first so entries
        recorded meanwhile by other processes are kept."""
        from .filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path.with_name(f".{self.path.name}.flock"), timeout=120):
            on_disk = _read(self.path)
            for url, entry in self._changed.items():
                if entry is None:
                    on_disk.pop(url, None)
                else:
                    on_disk[url] = entry
            atomic_write_text(self.path, _dump(on_disk))
            self.entries = on_disk
            self._changed.clear()


def _read(path: Path) -> dict[str, LockEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise LockFileError(
            f"cannot read lock file {path}: {e.strerror or e}", hint="check its permissions"
        ) from None
    if not text.strip():
        return {}
    try:
        data: Any = json.loads(text)
        arts = data["artifacts"]
        return {
            str(url): LockEntry(sha256=str(v["sha256"]), size=int(v["size"]))
            for url, v in arts.items()
            if _SHA256.match(str(v["sha256"]))
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LockFileError(
            f"lock file {path} is not a picozoo lock file",
            hint="fix or delete it; `picozoo lock MODEL...` re-creates pins",
        ) from None


def _dump(entries: dict[str, LockEntry]) -> str:
    data = {
        "version": 1,
        "artifacts": {
            url: {"sha256": e.sha256, "size": e.size} for url, e in sorted(entries.items())
        },
    }
    return json.dumps(data, indent=2) + "\n"
