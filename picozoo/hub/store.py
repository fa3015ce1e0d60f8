"""The store: picozoo's cache directory, its layout, refs, pins, mirrors and offline mode.

Layout under the cache root (``Settings.cache_dir``)::

    picozoo.lock                   pinned sha256/size per URL (see picozoo.hub.pins)
    blobs/sha256/<hex>             downloaded files, named by content, read-only, never rewritten
    unpacked/<hex16>/tree/...      an extracted tarball (``<hex16>`` = blob hash prefix)
    unpacked/<hex16>/manifest.json sha256 of every extracted file, recorded while extracting
    files/<hex16>/<file name>      a hard link to the blob under its upstream name (non-tarballs)
    refs/<urlkey>.json             URL -> blob (+ unpacked dir), verified flag (a :class:`Ref`)
    refs/<urlkey>.used             its mtime is the last use
    downloads/<urlkey>.part        resumable partial download (+ ``.part.json`` validators;
                                   see :class:`~picozoo.hub.partial.PartialDownload`)
    locks/<urlkey>.lock            per-URL cross-process mutex
    converted/<label>/<key>/       a converted model + provenance.json (see picozoo.convert)
    evals/<digest>.json            a ``picozoo eval`` result (an :class:`EvalResult`)
    tools/<name>/                  a managed tool environment (paddlelite-2.12-cp37: a venv
                                   with paddle_lite_opt; ``.complete`` written last)
    .thirdparty/                   what matplotlib, Paddle, ... write on import (not $HOME;
                                   see picozoo.thirdparty)
    */.tmp-*                       staging folders; a crashed one is removed by ``cache prune``

Every path the store hands out is checked first: no part of it below the cache root may be a
symlink or a special file (picozoo never creates one there, so one was planted to make picozoo
write elsewhere); such a path raises :class:`~picozoo.errors.TamperedStoreError`. Files and
folders follow the permissions policy of :mod:`picozoo.atomic` (blobs, unpacked files and
converted outputs read-only for everyone).

A converted output is checked on every use (:meth:`Store.converted_problems`): each of its
files must be a regular file with the size and sha256 its ``provenance.json`` recorded, and
those must agree with its pin in the pins file.

>>> from picozoo.settings import Settings
>>> store = Store(Settings(cache_dir=Path("/tmp/zoo")))
>>> store.blob_path("ab" * 32).relative_to(store.root).as_posix()[:20]
'blobs/sha256/abababa'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import (
    READONLY_MODE,
    atomic_write_text,
    check_not_planted,
    make_staging_dir,
    open_nofollow,
    policy_mode,
)
from ..provenance import Provenance
from ..settings import Settings
from .eval_result import EvalResult, eval_digest
from .mirror import normalise_mirror, source_urls
from .mutex import mutex
from .partial import PART, PartialDownload
from .pins import PinFile

CONVERTED = "converted"
TOOLS = "tools"
EVALS = "evals"
PROVENANCE = "provenance.json"
#: Staging folders (unpack, conversion) start with this; ``cache prune`` removes old ones.
STAGING_PREFIX = ".tmp-"
#: A ``provenance.json`` larger than this is not read (they are a few KB).
MAX_PROVENANCE_BYTES = 1 << 20
#: Pins of converted outputs use this URL scheme in the pins file.
CONVERTED_PIN_PREFIX = "picozoo-converted:"


@dataclass(frozen=True)
class Ref:
    """What the store knows about one artifact URL (``refs/<key>.json``); paths are relative to
    the cache root."""

    url: str
    model_id: str
    kind: str
    sha256: str
    size: int
    blob: str
    path: str
    unpacked: str | None = None
    verified: bool = True
    source: str = ""
    fetched_at: float = 0.0

    @classmethod
    def from_json(cls, data: Any) -> Ref | None:
        """The ref a JSON object describes, or None when it is not a valid ref."""
        try:
            ref = cls(
                url=str(data["url"]),
                model_id=str(data.get("model_id", "")),
                kind=str(data.get("kind", "")),
                sha256=str(data["sha256"]),
                size=int(data.get("size", 0)),
                blob=str(data.get("blob") or f"blobs/sha256/{data['sha256']}"),
                path=str(data.get("path") or data.get("blob") or ""),
                unpacked=str(data["unpacked"]) if data.get("unpacked") else None,
                verified=bool(data.get("verified", False)),
                source=str(data.get("source", "")),
                fetched_at=float(data.get("fetched_at") or 0.0),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        rels = (ref.blob, ref.path, ref.unpacked or "")
        return ref if all(_is_relative_inside(r) for r in rels) else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Entry:
    """A cached artifact. ``path`` is what users load: the unpacked directory of a tarball,
    the file (under its upstream name) otherwise."""

    url: str
    model_id: str
    kind: str
    path: Path
    sha256: str
    size: int
    verified: bool
    last_used: float | None
    blob: Path
    unpacked: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "kind": self.kind,
            "url": self.url,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "verified": self.verified,
            "last_used": self.last_used,
            "blob": str(self.blob),
            "unpacked": str(self.unpacked) if self.unpacked else None,
        }


@dataclass(frozen=True)
class ConvertedOutput:
    """A converted model in the store (read from its ``provenance.json``)."""

    label: str
    key: str
    directory: Path
    provenance: Provenance

    @property
    def target(self) -> str:
        return self.provenance.target

    @property
    def path(self) -> Path:
        return self.directory / self.provenance.output.file

    @property
    def source_kind(self) -> str | None:
        return self.provenance.source.kind or None

    @property
    def created(self) -> str:
        return self.provenance.created or ""

    def to_dict(self) -> dict[str, Any]:
        out, parity = self.provenance.output, self.provenance.parity
        return {
            "key": self.key,
            "target": self.target,
            "path": str(self.path),
            "sha256": out.sha256,
            "size": out.size,
            "source_kind": self.source_kind,
            "options": self.provenance.options.to_json(),
            "parity": {"passed": parity.passed, "max_abs": parity.max_abs} if parity else None,
            "created": self.provenance.created,
        }


def url_key(url: str) -> str:
    """A file-name-safe key for a URL: the file name plus a hash of the whole URL.

    >>> url_key("https://h/a/b c.tar")[:8], len(url_key("https://h/a/b c.tar"))
    ('b_c.tar-', 24)
    """
    name = url.rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]
    return f"{safe}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


class Store:
    """One cache root with its settings: layout, refs, pins, mirrors, converted outputs.

    Reads are cheap (no hashing); every write is atomic (temp + rename).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.cache_dir).expanduser().absolute()
        self.mirrors = [normalise_mirror(m) for m in settings.mirrors]

    @property
    def offline(self) -> bool:
        return self.settings.offline

    # -- locations (each checked by :meth:`path`) ------------------------------------------------
    def path(self, *parts: str) -> Path:
        """``root/parts...`` after checking that no existing part of it below the root is a
        symlink or special file (see :func:`check_no_links`)."""
        return check_no_links(self.root, self.root.joinpath(*parts))

    @property
    def blobs_dir(self) -> Path:
        return self.path("blobs", "sha256")

    @property
    def unpacked_root(self) -> Path:
        return self.path("unpacked")

    @property
    def refs_dir(self) -> Path:
        return self.path("refs")

    @property
    def downloads_dir(self) -> Path:
        return self.path("downloads")

    @property
    def locks_dir(self) -> Path:
        return self.path("locks")

    @property
    def files_root(self) -> Path:
        return self.path("files")

    @property
    def converted_root(self) -> Path:
        return self.path(CONVERTED)

    def blob_path(self, sha256: str) -> Path:
        return self.path("blobs", "sha256", sha256)

    def unpacked_dir(self, sha256: str) -> Path:
        return self.path("unpacked", sha256[:16])

    def named_path(self, sha256: str, filename: str) -> Path:
        """Where a non-tarball blob is visible under its upstream file name."""
        return self.path("files", sha256[:16], filename)

    def ref_path(self, url: str) -> Path:
        return self.path("refs", f"{url_key(url)}.json")

    def used_path(self, url: str) -> Path:
        return self.path("refs", f"{url_key(url)}.used")

    def partial(self, url: str) -> PartialDownload:
        """The (shared) partial download of ``url`` in ``downloads/`` (its path checked like
        every other: a planted link there is refused)."""
        return PartialDownload(self.path("downloads", f"{url_key(url)}{PART}"))

    def part_path(self, url: str) -> Path:
        return self.partial(url).path

    def partial_files(self) -> list[Path]:
        """Every file in ``downloads/`` (partial downloads, their validators, leftovers of
        their atomic writes), by name."""
        if not self.downloads_dir.is_dir():
            return []
        return sorted(self.downloads_dir.iterdir())

    def mutex_path(self, url: str) -> Path:
        return self.key_mutex_path(url_key(url))

    def key_mutex_path(self, key: str) -> Path:
        """The mutex file of URL key ``key`` (see :func:`url_key`)."""
        return self.path("locks", f"{key}.lock")

    @property
    def evals_root(self) -> Path:
        return self.path(EVALS)

    def eval_path(self, key: dict[str, Any]) -> Path:
        """Where the eval result identified by ``key`` lives (see :class:`EvalResult`)."""
        return self.path(EVALS, f"{eval_digest(key)}.json")

    # -- sources, pins, mutex -------------------------------------------------------------------
    def sources(self, url: str) -> list[str]:
        """Where to download ``url`` from: each mirror in order, else upstream."""
        return source_urls(url, self.mirrors)

    def pins(self) -> PinFile:
        """The pins file in force (``--lock FILE`` or ``<cache>/picozoo.lock``), loaded now."""
        if self.settings.lock_path is None:  # the cache's own: no planted link is followed
            return PinFile.load(self.path(self.settings.pins_path.name))
        return PinFile.load(self.settings.pins_path)

    def mutex(
        self, url: str, *, timeout: float = 3600.0, on_wait: Callable[[], None] | None = None
    ) -> contextlib.AbstractContextManager[bool]:
        """The cross-process mutex of one artifact URL (pull and maintenance both take it)."""
        return mutex(
            self.mutex_path(url), mode=self.settings.locking, timeout=timeout, on_wait=on_wait
        )

    # -- refs -----------------------------------------------------------------------------------
    def read_ref(self, url: str) -> Ref | None:
        return Ref.from_json(_read_json(self.ref_path(url)))

    def write_ref(self, ref: Ref) -> None:
        atomic_write_text(self.ref_path(ref.url), ref.to_json())

    def drop_ref(self, url: str) -> None:
        for p in (self.ref_path(url), self.used_path(url)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def refs(self) -> Iterator[Ref]:
        """Every valid ref in the store (order: by file name)."""
        if not self.refs_dir.is_dir():
            return
        for p in sorted(self.refs_dir.glob("*.json")):
            ref = Ref.from_json(_read_json(check_no_links(self.root, p)))
            if ref is not None:
                yield ref

    def touch(self, url: str) -> None:
        """Record a use of ``url`` now (the mtime of ``refs/<key>.used``: no ref rewrite, so it
        cannot race with a concurrent pull updating the ref)."""
        p = self.used_path(url)
        with contextlib.suppress(OSError):
            p.parent.mkdir(parents=True, exist_ok=True)
            with open_nofollow(p, "ab") as f:
                os.utime(f.fileno() if os.utime in os.supports_fd else p)

    def last_used(self, url: str) -> float | None:
        try:
            return self.used_path(url).stat().st_mtime
        except OSError:
            return None

    def set_verified(self, url: str, verified: bool) -> None:
        ref = self.read_ref(url)
        if ref is not None and ref.verified != verified:
            self.write_ref(_replace(ref, verified=verified))

    # -- lookups --------------------------------------------------------------------------------
    def entry(self, ref: Ref) -> Entry | None:
        """The entry a ref describes, or None when its files are gone."""
        blob = self.blob_path(ref.sha256)
        unpacked = self.path(ref.unpacked) if ref.unpacked else None
        path = self.path(ref.path) if ref.path else blob
        if not path.exists() or (unpacked is None and not blob.is_file()):
            return None
        return Entry(
            url=ref.url,
            model_id=ref.model_id,
            kind=ref.kind,
            path=path,
            sha256=ref.sha256,
            size=ref.size,
            verified=ref.verified,
            last_used=self.last_used(ref.url) or ref.fetched_at or None,
            blob=blob,
            unpacked=unpacked,
        )

    def lookup(self, artifact: Any) -> Entry | None:
        """The cached entry of a registry :class:`~picozoo.hub.registry.Artifact`, or None."""
        ref = self.read_ref(artifact.url)
        return self.entry(ref) if ref else None

    def entries(self) -> list[Entry]:
        return [e for e in (self.entry(r) for r in self.refs()) if e is not None]

    def models_with_entries(self) -> set[str]:
        """Ids of the models that have anything in the store (downloads or conversions)."""
        ids = {e.model_id for e in self.entries()}
        return ids | {d.name for d in _subdirs(self.converted_root) if _subdirs(d)}

    # -- blobs ----------------------------------------------------------------------------------
    def store_blob(self, src: Path, sha256: str) -> Path:
        """Move a fully verified file into ``blobs/sha256/<sha256>`` (read-only).

        Never overwrites: if the blob already exists ``src`` is discarded (same name = same
        bytes).
        """
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        check_not_planted(src)  # a planted symlink: never hard-link or chmod through it
        with contextlib.suppress(OSError):
            os.chmod(src, policy_mode(READONLY_MODE))
        try:
            os.link(src, dest)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: rename, but only if nobody placed it meanwhile
            if not dest.exists():
                os.replace(src, dest)
                return dest
        with contextlib.suppress(FileNotFoundError):
            os.unlink(src)
        return dest

    def link_named(self, blob: Path, sha256: str, filename: str) -> Path:
        """Give ``blob`` its upstream file name (hard link; copy where links are unsupported)."""
        check_not_planted(blob)
        dest = self.named_path(sha256, filename)
        with contextlib.suppress(OSError):
            if os.path.samefile(dest, blob):
                return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(blob, tmp)
        except OSError:
            shutil.copyfile(blob, tmp)
            os.chmod(tmp, policy_mode(READONLY_MODE))
        os.replace(tmp, dest)
        return dest

    def referenced(self) -> tuple[set[str], set[str]]:
        """(blob hashes, ``unpacked/`` + ``files/`` dir names) referenced by some ref."""
        blobs, dirs = set(), set()
        for ref in self.refs():
            blobs.add(ref.sha256)
            for rel in (ref.unpacked, ref.path):
                parts = Path(rel or "").parts
                if len(parts) >= 2 and parts[0] in ("unpacked", "files"):
                    dirs.add(parts[1])
        return blobs, dirs

    # -- staging and converted outputs ---------------------------------------------------------
    def staging_dir(self, parent: Path) -> Path:
        """A fresh staging folder in ``parent`` (same file system as the final place), with
        the permissions policy's folder mode (``mkdtemp`` alone gives a private 0o700)."""
        return make_staging_dir(check_no_links(self.root, parent), STAGING_PREFIX)

    @property
    def tools_root(self) -> Path:
        return self.path(TOOLS)

    def tool_dir(self, name: str) -> Path:
        """A managed tool environment, e.g. ``tools/paddlelite-2.12-cp37/`` (see
        :mod:`picozoo.convert.lite_toolchain`)."""
        return self.path(TOOLS, name)

    def converted_dir(self, label: str, key: str) -> Path:
        return self.path(CONVERTED, label, key)

    def install_dir(self, staging: Path, final: Path) -> Path:
        """Move a finished staging folder into place, its files read-only like all content
        (if another process won, keep theirs)."""
        check_no_links(self.root, final)
        for p in staging.iterdir():
            if _regular(p):
                os.chmod(p, policy_mode(READONLY_MODE))
        final.parent.mkdir(parents=True, exist_ok=True)
        move_into_place(staging, final, PROVENANCE)
        return final

    def read_converted(self, directory: Path) -> ConvertedOutput | None:
        """The converted output in ``directory``; None when its ``provenance.json`` is missing,
        not a regular file, larger than :data:`MAX_PROVENANCE_BYTES`, not JSON, or does not
        describe its files (plain file names, sha256 hex digests, sizes): a damaged output,
        which :meth:`unreadable_converted` lists."""
        path = directory / PROVENANCE
        if directory.name.startswith(".") or not _regular(path):
            return None
        with contextlib.suppress(OSError):
            if path.lstat().st_size > MAX_PROVENANCE_BYTES:
                return None
        prov = _read_json(path)
        if prov is None:
            return None
        try:
            record = Provenance.from_json(prov)
        except (TypeError, ValueError, AttributeError, KeyError):
            return None
        item = ConvertedOutput(directory.parent.name, directory.name, directory, record)
        return item if _describes_files(item) else None

    def unreadable_converted(self, label: str | None = None) -> list[Path]:
        """Folders of converted outputs (of ``label``, else all) whose ``provenance.json`` is
        missing or unreadable (see :meth:`read_converted`).

        >>> from picozoo.settings import Settings
        >>> Store(Settings(cache_dir=Path("/nonexistent"))).unreadable_converted()
        []
        """
        roots = [self.converted_root / label] if label else _subdirs(self.converted_root)
        return [d for root in roots for d in _subdirs(root) if self.read_converted(d) is None]

    def converted(self, label: str | None = None) -> list[ConvertedOutput]:
        """Converted outputs (of ``label``, else all), newest first.

        >>> from picozoo.settings import Settings
        >>> Store(Settings(cache_dir=Path("/nonexistent"))).converted("picodet-s-416")
        []
        """
        roots = [self.converted_root / label] if label else _subdirs(self.converted_root)
        items = [
            c for root in roots for d in _subdirs(root) if (c := self.read_converted(d)) is not None
        ]
        items.sort(key=lambda c: c.created, reverse=True)
        return items

    def converted_files(self, item: ConvertedOutput) -> dict[str, tuple[str, int]]:
        """Each file of a converted output (the main one, then its siblings): name ->
        (sha256, size) as its provenance recorded them."""
        output = item.provenance.output
        files = {output.file: (output.sha256, int(output.size))}
        for name, facts in sorted((output.files or {}).items()):
            files[name] = (facts.sha256, int(facts.size))
        return files

    def converted_problems(self, item: ConvertedOutput, pins: PinFile | None = None) -> list[str]:
        """What is wrong with a converted output's files (empty: intact): each must be a
        regular file (no symlink) with the size and sha256 its provenance recorded, and those
        must be what the pins file (``pins``, default the store's) pinned for it. An intact
        output that is still writable (made before outputs were read-only) is made read-only.

        Hashing is cheap next to loading a model (about 1 GB/s; an ONNX of PicoDet is
        4-30 MB), so it is done on every cache hit."""
        pins = self.pins() if pins is None else pins
        problems: list[str] = []
        for name, (sha, size) in self.converted_files(item).items():
            path = item.directory / name
            pin = pins.get(converted_pin_url(item.label, item.key, name))
            if pin is not None and (pin.sha256, pin.size) != (sha, size):
                problems.append(
                    f"{path}: provenance.json records sha256 {sha} ({size} bytes), "
                    f"{pins.path} pinned {pin.sha256} ({pin.size} bytes)"
                )
                continue
            problems += _file_problems(path, sha, size)
        if not problems:
            for name in (*self.converted_files(item), PROVENANCE):
                _make_readonly(item.directory / name)
        return problems

    def pin_converted(self, item: ConvertedOutput) -> None:
        """Record the sha256/size of a converted output's files (the main one and its
        siblings, e.g. an IR's ``.bin``) in the pins file, like a download."""
        output = item.provenance.output
        want = {item.path.name: (output.sha256, item.path.stat().st_size)}
        for name, facts in sorted((output.files or {}).items()):
            want[name] = (facts.sha256, int(facts.size))
        pins, changed = self.pins(), False
        for name, (sha, size) in want.items():
            url = converted_pin_url(item.label, item.key, name)
            current = pins.get(url)
            if current is None or current.sha256 != sha:
                pins.record(url, sha, size)
                changed = True
        if changed:
            pins.save()

    # -- eval results ---------------------------------------------------------------------------
    def read_eval(self, key: dict[str, Any]) -> EvalResult | None:
        """The cached eval result identified by ``key``, or None."""
        return EvalResult.from_json(_read_json(self.eval_path(key)))

    def write_eval(self, result: EvalResult) -> Path:
        """Store ``result`` (atomically; the same key replaces an older result)."""
        path = self.eval_path(result.key)
        atomic_write_text(path, result.to_json())
        return path

    def eval_files(self) -> list[tuple[Path, EvalResult | None]]:
        """Every ``evals/*.json`` file with its result (None: unreadable, or a planted link
        or special file, which is never read), by file name."""
        root = self.evals_root
        if not root.is_dir():
            return []
        return [
            (p, EvalResult.from_json(_read_json(p)) if _regular(p) else None)
            for p in sorted(root.glob("*.json"))
        ]

    def evals(self) -> list[EvalResult]:
        """Every readable eval result in the store, by file name.

        >>> Store(Settings(cache_dir=Path("/nonexistent"))).evals()
        []
        """
        return [r for _, r in self.eval_files() if r is not None]


def converted_pin_url(label: str, key: str, name: str) -> str:
    """The pins-file URL of one file of a converted output.

    >>> converted_pin_url("picodet-s-416", "8c58bcea9e5d5ec2", "model.onnx")
    'picozoo-converted:picodet-s-416/8c58bcea9e5d5ec2/model.onnx'
    """
    return f"{CONVERTED_PIN_PREFIX}{label}/{key}/{name}"


def move_into_place(staging: Path, final: Path, marker: str) -> bool:
    """Rename the finished folder ``staging`` to ``final``; True when it was ours that landed.

    Race-tolerant: when another process installed ``final`` first (it holds its ``marker``
    file, written last), ``staging`` is discarded and theirs is kept (False). Any other
    failure raises.
    """
    try:
        os.replace(staging, final)
    except OSError:
        if not (final / marker).is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def check_no_links(root: Path, path: Path) -> Path:
    """``path`` unchanged, after checking each existing part of it below ``root``: folders must
    be real folders and the last part a regular file or folder; a symlink (or a FIFO, device,
    ...) raises :class:`~picozoo.errors.TamperedStoreError`. ``root`` itself may be a symlink
    (the user chose it). Parts that do not exist yet end the check.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> (root / "blobs").symlink_to("/etc")
    >>> check_no_links(root, root / "refs" / "x.json") == root / "refs" / "x.json"
    True
    >>> check_no_links(root, root / "blobs" / "sha256")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    picozoo.errors.TamperedStoreError: refusing to use .../blobs: it is a symlink to '/etc' ...
    >>> import shutil; shutil.rmtree(root)
    """
    parts = path.relative_to(root).parts
    cur = root
    for i, part in enumerate(parts):
        cur = cur / part
        if not check_not_planted(cur, "folder" if i < len(parts) - 1 else "any"):
            break
    return path


def _is_relative_inside(rel: str) -> bool:
    """True for a relative POSIX path without ``..`` (what refs record)."""
    parts = rel.replace("\\", "/").split("/")
    return not rel.startswith(("/", "\\")) and ":" not in parts[0] and ".." not in parts


def _replace(ref: Ref, **changes: Any) -> Ref:
    import dataclasses

    return dataclasses.replace(ref, **changes)


def _regular(path: Path) -> bool:
    """A regular file, not reached through a symlink."""
    import stat

    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _describes_files(item: ConvertedOutput) -> bool:
    """Whether ``item``'s provenance names its files as picozoo writes them: plain file names
    (no folder, no ``..``), lower-case sha256 hex digests, sizes >= 0; and its target and date
    are text."""
    import re

    record, output = item.provenance, item.provenance.output
    if not isinstance(record.target, str) or not isinstance(record.created or "", str):
        return False
    if not isinstance(output.files or {}, dict):
        return False
    files = [(output.file, output.sha256, output.size)]
    files += [(n, f.sha256, f.size) for n, f in (output.files or {}).items()]
    for name, sha, size in files:
        plain = isinstance(name, str) and name not in ("", ".", "..", PROVENANCE)
        if not plain or any(c in name for c in "/\\\0"):
            return False
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            return False
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return False
    return True


def _file_problems(path: Path, sha256: str, size: int) -> list[str]:
    """Why ``path`` is not the regular file of ``size`` bytes and ``sha256`` (empty: it is)."""
    import stat

    from ..atomic import sha256_file

    try:
        st = path.lstat()
    except FileNotFoundError:
        return [f"{path} is missing"]
    except OSError as e:
        return [f"{path}: {e.strerror or e}"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{path} is not a regular file (a symlink or special file was put there)"]
    if st.st_size != size:
        return [f"{path}: {st.st_size} bytes, recorded {size} (changed on disk)"]
    try:
        actual = sha256_file(path)
    except OSError as e:
        return [f"{path}: {e.strerror or e}"]
    if actual != sha256:
        return [f"{path}: sha256 {actual}, recorded {sha256} (bytes changed on disk)"]
    return []


def _make_readonly(path: Path) -> None:
    """Drop the write bits of a regular file (not through a symlink); errors are ignored."""
    with contextlib.suppress(OSError):
        mode = path.lstat().st_mode
        if _regular(path) and mode & 0o222:
            os.chmod(path, policy_mode(READONLY_MODE))


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
