"""The pins file (``picozoo.lock``): sha256 and size of every artifact URL picozoo verified.

Upstream publishes no hashes, so the first verified download of a URL is pinned here and every
later download must match it (trust on first use, like ``pip --require-hashes``). The file is
sorted JSON, so it diffs well when kept in a project (``--lock FILE``)::

    {"version": 1, "artifacts": {"https://.../x.tar": {"sha256": "...", "size": 123}}}

The file is validated when loaded: a malformed entry is an error naming the file and the
entry, never silently dropped (and so never silently replaced).

>>> pins = PinFile.load(Path("/tmp/project/picozoo.lock"))      # doctest: +SKIP
>>> pins.record("https://example.com/x.tar", "ab" * 32, 10); pins.save()   # doctest: +SKIP
>>> pins.get("https://example.com/x.tar").size                # doctest: +SKIP
10
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import PinsFileError

VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PinnedHash:
    """A pinned artifact: its sha256 (lower-case hex) and size in bytes."""

    sha256: str
    size: int


class PinFile:
    """An in-memory view of a pins file. ``save`` merges with concurrent writers."""

    def __init__(self, path: Path, entries: dict[str, PinnedHash] | None = None) -> None:
        self.path = Path(path)
        self.entries: dict[str, PinnedHash] = dict(entries or {})
        self._changed: dict[str, PinnedHash | None] = {}

    @classmethod
    def load(cls, path: Path) -> PinFile:
        """Read and validate ``path``; a missing file is an empty pins file."""
        return cls(path, _read(Path(path)))

    def get(self, url: str) -> PinnedHash | None:
        return self.entries.get(url)

    def record(self, url: str, sha256: str, size: int) -> None:
        """Pin ``url`` to ``sha256``/``size`` (kept in memory until :meth:`save`)."""
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        entry = PinnedHash(sha256=sha256, size=int(size))
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
        """Atomically write the file, re-reading it under a mutex first so that entries pinned
        meanwhile by other processes are kept."""
        from .mutex import mutex

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with mutex(self.path.with_name(f".{self.path.name}.mutex"), timeout=120):
            on_disk = _read(self.path)
            for url, entry in self._changed.items():
                if entry is None:
                    on_disk.pop(url, None)
                else:
                    on_disk[url] = entry
            atomic_write_text(self.path, _dump(on_disk))
            self.entries = on_disk
            self._changed.clear()


def parse_entry(path: Path, url: str, value: Any) -> PinnedHash:
    """One validated entry (sha256 case-normalised); raises :class:`PinsFileError`.

    >>> parse_entry(Path("p.lock"), "u", {"sha256": "AB" * 32, "size": 3}).sha256[:4]
    'abab'
    >>> parse_entry(Path("p.lock"), "u", {"sha256": "ab", "size": 3})
    Traceback (most recent call last):
    ...
    picozoo.errors.PinsFileError: p.lock: entry 'u': sha256 must be 64 hex digits, got 'ab' \
(fix or remove the entry; `picozoo lock MODEL... --update` re-creates pins)
    """

    def bad(problem: str) -> PinsFileError:
        return PinsFileError(
            f"{path}: entry {url!r}: {problem}",
            hint="fix or remove the entry; `picozoo lock MODEL... --update` re-creates pins",
        )

    if not isinstance(value, dict):
        raise bad("must be an object with sha256 and size")
    sha = value.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise bad(f"sha256 must be 64 hex digits, got {sha!r}")
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad(f"size must be a whole number >= 0, got {size!r}")
    return PinnedHash(sha256=sha.lower(), size=size)


def _read(path: Path) -> dict[str, PinnedHash]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise PinsFileError(
            f"cannot read pins file {path}: {e}", hint="check its permissions"
        ) from e
    if not text.strip():
        return {}
    try:
        data: Any = json.loads(text)
    except ValueError as e:
        raise PinsFileError(
            f"pins file {path} is not JSON: {e}",
            hint="fix or delete it; `picozoo lock MODEL...` re-creates pins",
        ) from e
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        raise PinsFileError(
            f"{path} is not a picozoo pins file (no 'artifacts' object)",
            hint="fix or delete it; `picozoo lock MODEL...` re-creates pins",
        )
    if data.get("version", VERSION) != VERSION:
        raise PinsFileError(
            f"{path}: unknown pins file version {data.get('version')!r} (this picozoo reads "
            f"version {VERSION})",
            hint="upgrade picozoo, or use another --lock file",
        )
    return {str(url): parse_entry(path, str(url), v) for url, v in data["artifacts"].items()}


def _dump(entries: dict[str, PinnedHash]) -> str:
    data = {
        "version": VERSION,
        "artifacts": {
            url: {"sha256": e.sha256, "size": e.size} for url, e in sorted(entries.items())
        },
    }
    return json.dumps(data, indent=2) + "\n"
