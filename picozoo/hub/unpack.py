"""Safe tarball extraction with a manifest of hashes.

Every member is checked *before* anything is written, on every Python version (this does not
rely on ``tarfile``'s ``data`` filter, which older Pythons lack): absolute paths, ``..``
components, duplicate names, links whose target leaves the archive root, hard links to anything
but an earlier file, members below a symlink or a file, devices, FIFOs and any other special
type are refused (:class:`~picozoo.errors.UnsafeArchiveError`, exit 5).  The unpacked size is
added up from the member headers while they are read, and an archive that would unpack to more
than :class:`~picozoo.settings.UnpackLimits` allows (a multiple of the archive size, and an
absolute cap) is refused before anything is written (:class:`~picozoo.errors.ArchiveTooLargeError`,
exit 5); the bytes actually written are counted against the same cap.  Files are then written
by picozoo itself (``O_EXCL | O_NOFOLLOW``, read-only modes of the store's permissions policy)
into a staging folder ``.tmp-*`` next to the target, hashed while written, and the folder is
renamed into place only when complete.  Any error removes the staging folder; an ``OSError``
(disk full, read-only) becomes a one-line :class:`~picozoo.errors.DiskError` (exit 12).  A
killed process leaves only the staging folder, which ``picozoo cache prune`` removes.

>>> m = extract_tarball(Path("x.tar"), Path("cache/unpacked/5f0c"))   # doctest: +SKIP
>>> m["root"], sorted(m["files"])                                    # doctest: +SKIP
('tree/picodet_s_416_coco_lcnet', ['picodet_s_416_coco_lcnet/infer_cfg.yml', ...])
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..atomic import (
    READONLY_EXEC_MODE,
    READONLY_MODE,
    atomic_write_text,
    copy_hashing,
    make_staging_dir,
    policy_mode,
)
from ..errors import ArchiveTooLargeError, BadArchiveError, DiskError, UnsafeArchiveError
from ..settings import UnpackLimits
from .store import STAGING_PREFIX, move_into_place

MANIFEST = "manifest.json"
TREE = "tree"
#: (most bytes an archive may unpack to, which setting sets that), from :func:`unpack_cap`
Cap = tuple[int, str]


def check_members(members: list[tarfile.TarInfo], label: str = "archive") -> list[str]:
    """Validate every member; return the normalised names.  Raises UnsafeArchiveError."""
    names = [_normalise(m.name, label) for m in members]
    symlinks = {n for m, n in zip(members, names, strict=True) if m.issym()}
    seen: set[str] = set()
    files: set[str] = set()  # regular files and hard links (copied as files) so far
    folders: set[str] = set()  # folders so far, explicit or implied by a member's path
    for m, name in zip(members, names, strict=True):
        if name in seen:
            _refuse(label, m.name, "appears twice (a later copy could replace the first)")
        for parent in _parents(name):
            if parent in symlinks:
                _refuse(label, m.name, f"lies below the symlink {parent!r}")
            if parent in files:
                _refuse(label, m.name, f"lies below {parent!r}, which is a file")
        if not m.isdir() and name in folders:
            _refuse(label, m.name, "is not a folder, but earlier members lie below it")
        if m.isreg() or m.isdir():
            pass
        elif m.issym():
            _check_symlink(label, m, name, symlinks)
        elif m.islnk():
            target = _normalise(m.linkname, label, what="hard link target", member=m.name)
            if target not in files:
                what = "a folder" if target in folders else "not an earlier file"
                _refuse(label, m.name, f"is a hard link to {m.linkname!r}, {what}")
        elif m.ischr() or m.isblk():
            _refuse(label, m.name, "is a device node")
        elif m.isfifo():
            _refuse(label, m.name, "is a FIFO")
        else:
            _refuse(label, m.name, f"has unsupported type {m.type!r}")
        seen.add(name)
        folders.update(_parents(name))
        if m.isdir():
            folders.add(name)
        elif m.isreg() or m.islnk():
            files.add(name)
    return names


def _check_symlink(label: str, m: tarfile.TarInfo, name: str, symlinks: set[str]) -> None:
    """A symlink may only point inside the archive, without passing through another symlink
    (whose own target would change what ``..`` means)."""
    target = m.linkname.replace("\\", "/")
    if not target or target.startswith("/") or _has_drive(target):
        _refuse(label, m.name, f"is a symlink to the absolute path {m.linkname!r}")
    stack = name.split("/")[:-1]
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                _refuse(label, m.name, f"is a symlink pointing outside the archive ({target!r})")
            stack.pop()
            continue
        stack.append(comp)
        if "/".join(stack) in symlinks:
            _refuse(label, m.name, f"is a symlink through another symlink ({target!r})")


def extract_tarball(
    tar_path: Path,
    dest: Path,
    *,
    label: str = "archive",
    check: Callable[[Path], None] | None = None,
    limits: UnpackLimits | None = None,
) -> dict[str, Any]:
    """Extract ``tar_path`` into ``dest`` (which must not exist) via ``dest.parent/.tmp-*``.

    ``dest`` then holds ``tree/`` (the archive content) and ``manifest.json``; the manifest
    (returned) maps each extracted file, relative to ``tree/``, to its sha256 and size, and
    ``root`` is the usable directory relative to ``dest`` (``tree/<top>`` when the archive has a
    single top-level directory, as upstream's do).  ``check(root)`` runs on the extracted root
    before the rename; if it raises, nothing is left behind.  ``limits`` (default:
    ``UnpackLimits()``; pass ``Settings.unpack``) caps the unpacked size.
    """
    cap = unpack_cap(tar_path, limits or UnpackLimits())
    try:
        tmp = make_staging_dir(dest.parent, f"{STAGING_PREFIX}{dest.name}-")
    except OSError as e:
        raise _disk_error(e, dest) from e
    try:
        manifest = _extract_into(tar_path, tmp, label, cap)
        if check is not None:
            check(tmp / str(manifest["root"]))
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if not move_into_place(tmp, dest, MANIFEST):  # another process unpacked it meanwhile
            return read_manifest(dest) or manifest
        return manifest
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _disk_error(e, dest) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def unpack_cap(tar_path: Path, limits: UnpackLimits) -> Cap:
    """The most bytes ``tar_path`` may unpack to, and which limit sets it.

    >>> unpack_cap(Path("/nonexistent.tar"), UnpackLimits(max_ratio=50, max_bytes=1 << 30))
    (0, 'PICOZOO_MAX_UNPACK_RATIO=50 x the archive size of 0 bytes')
    """
    try:
        size = os.stat(tar_path).st_size
    except OSError:
        size = 0
    by_ratio = int(limits.max_ratio * size)
    if by_ratio < limits.max_bytes:
        return (
            by_ratio,
            f"PICOZOO_MAX_UNPACK_RATIO={limits.max_ratio:g} x the archive size of {size} bytes",
        )
    return limits.max_bytes, f"PICOZOO_MAX_UNPACK_BYTES={limits.max_bytes}"


def read_manifest(unpacked: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((unpacked / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_unpacked(udir: Path) -> tuple[int, list[str]]:
    """Re-hash an unpacked tree against its manifest: (files checked, problems).

    Flags changed, missing and unexpected files (an added ``model.json`` would change what
    Paddle loads, so extras matter)."""
    manifest = read_manifest(udir)
    if manifest is None:
        return 0, [f"unpacked directory {udir} has no readable {MANIFEST}"]
    from ..atomic import sha256_file

    problems = []
    tree = udir / TREE
    files: dict[str, Any] = manifest.get("files", {})
    for rel, rec in sorted(files.items()):
        p = tree / rel
        if not p.is_file():
            problems.append(f"unpacked file {rel} is missing")
            continue
        actual = sha256_file(p)
        if actual != rec.get("sha256"):
            problems.append(
                f"unpacked file {rel}: sha256 {actual}, unpacked as {rec.get('sha256')}"
            )
    members = set(manifest.get("members", []))
    for root, _dirs, names in os.walk(tree):
        for nm in names:
            rel = (Path(root) / nm).relative_to(tree).as_posix()
            if rel not in files and rel not in members:
                problems.append(f"unexpected file {rel} in {tree}")
    return len(files), problems


def list_members(tar_path: Path, label: str = "archive") -> list[tarfile.TarInfo]:
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            return tf.getmembers()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BadArchiveError(
            f"{label} is not a readable tarball: {e}",
            hint="remove it with `picozoo cache rm` and pull again",
        ) from e


# -- internals -------------------------------------------------------------------------------
_READ_ERRORS = (OSError, EOFError, ValueError, tarfile.TarError, zlib.error, lzma.LZMAError)


def _extract_into(tar_path: Path, tmp: Path, label: str, cap: Cap) -> dict[str, Any]:
    tree = tmp / TREE
    tree.mkdir()
    files: dict[str, dict[str, Any]] = {}
    try:
        tf = tarfile.open(tar_path, "r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as e:
        raise BadArchiveError(f"{label} is not a readable tarball: {e}") from e
    with tf:
        members = _read_members(tf, label, cap)
        names = check_members(members, label)
        left = cap[0]  # bytes still allowed: what is written is counted, whatever headers say
        for m, name in zip(members, names, strict=True):
            target = tree / name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                os.symlink(m.linkname, target)
                continue
            if m.islnk():  # copy, never link: the link target is an earlier regular file
                with open(tree / _normalise(m.linkname, label), "rb") as f:
                    files[name] = _write(f, target, m.mode, left, label, cap)
            else:
                files[name] = _write_member(tf, m, target, left, label, cap)
            left -= files[name]["size"]
    tops = {n.split("/", 1)[0] for n in names}
    root = TREE
    if len(tops) == 1:
        (top,) = tops
        if (tree / top).is_dir() and not (tree / top).is_symlink():
            root = f"{TREE}/{top}"
    return {"version": 1, "root": root, "files": files, "members": names}


def _read_members(tf: tarfile.TarFile, label: str, cap: Cap) -> list[tarfile.TarInfo]:
    """Every member header, adding up the sizes they declare: refused as soon as the total
    passes the cap (so a compressed bomb is not even decompressed past it)."""
    members: list[tarfile.TarInfo] = []
    sizes: dict[str, int] = {}
    total = 0
    try:
        while (m := tf.next()) is not None:
            members.append(m)
            size = m.size if m.isreg() else sizes.get(m.linkname, 0) if m.islnk() else 0
            sizes[m.name] = size
            total += size
            if total > cap[0]:
                raise _too_large(label, f"at least {total} bytes", cap)
    except _READ_ERRORS as e:
        raise BadArchiveError(f"{label} is a truncated or corrupt tarball: {e}") from e
    return members


def _write_member(
    tf: tarfile.TarFile, m: tarfile.TarInfo, target: Path, left: int, label: str, cap: Cap
) -> dict[str, Any]:
    try:
        fobj = tf.extractfile(m)
    except _READ_ERRORS as e:
        raise BadArchiveError(f"{label}: cannot read member {m.name!r}: {e}") from e
    if fobj is None:
        raise BadArchiveError(f"{label}: cannot read member {m.name!r}")
    with fobj:
        rec = _write(_ArchiveReader(fobj, label, m.name), target, m.mode, left, label, cap)
    if rec["size"] != m.size:
        raise BadArchiveError(f"{label}: member {m.name!r} is truncated")
    return rec


class _ArchiveReader:
    """Reads a member; a failure to read (corrupt compressed data) is a BadArchiveError, so
    only failures to *write* become DiskErrors."""

    def __init__(self, f: IO[bytes], label: str, member: str) -> None:
        self.f, self.label, self.member = f, label, member

    def read(self, n: int = -1) -> bytes:
        try:
            return self.f.read(n)
        except _READ_ERRORS as e:
            raise BadArchiveError(
                f"{self.label}: member {self.member!r} cannot be read: {e}",
                hint="the archive is corrupt; remove it with `picozoo cache rm` and pull again",
            ) from e


def _write(src: Any, target: Path, mode: int, left: int, label: str, cap: Cap) -> dict[str, Any]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    perm = policy_mode(READONLY_EXEC_MODE if mode & 0o111 else READONLY_MODE)
    fd = os.open(target, flags, perm)
    with os.fdopen(fd, "wb") as out:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, perm)  # exactly the policy's mode, whatever the archive said
        try:
            sha, n = copy_hashing(src, out, limit=left)
        except ValueError as e:
            raise _too_large(label, f"more than {cap[0]} bytes (counted while writing)", cap) from e
    return {"sha256": sha, "size": n}


def _disk_error(e: OSError, dest: Path) -> DiskError:
    """A one-line DiskError naming ``dest`` (not the staging file, which is gone by then) for
    any OSError while writing the unpacked tree."""
    from .disk import disk_error

    bare = OSError(e.errno, e.strerror)
    err = disk_error(bare, dest)
    if err is None:  # not full or read-only (EFBIG, EIO, ...): still the disk, still one line
        err = DiskError(
            f"cannot write to {dest}: {e.strerror or e}",
            hint="check the disk holding the cache, or use --cache DIR/PICOZOO_CACHE elsewhere",
        )
    return err


def _too_large(label: str, what: str, cap: Cap) -> ArchiveTooLargeError:
    return ArchiveTooLargeError(
        f"refusing to unpack {label}: it would unpack to {what}, over the limit of {cap[0]} "
        f"bytes ({cap[1]}); nothing was unpacked",
        hint="a genuine model tarball is far smaller: check the mirror or the registry URL; "
        "raise the limit only for an archive you trust",
    )


def _normalise(path: str, label: str, what: str = "member", member: str | None = None) -> str:
    """``path`` with ``\\`` -> ``/`` and ``.``/empty parts dropped; refuses unsafe names.

    For a link target pass the link's ``member`` name: errors then name the member."""
    shown = path if member is None else member
    if member is not None:
        what = f"{what} {path!r}"
    name = path.replace("\\", "/")
    if not name or name.startswith("/") or _has_drive(name):
        _refuse(label, shown, f"{what} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        _refuse(label, shown, f"{what} contains '..'")
    if not parts:
        _refuse(label, shown, f"{what} has an empty name")
    if any("\x00" in p for p in parts):
        _refuse(label, shown, f"{what} contains a NUL byte")
    return "/".join(parts)


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _has_drive(name: str) -> bool:
    return len(name) >= 2 and name[1] == ":" and name[0].isalpha()


def _refuse(label: str, member: str, why: str) -> None:
    raise UnsafeArchiveError(
        f"refusing to unpack {label}: member {member!r} {why}",
        hint="this is not a genuine upstream tarball and nothing was unpacked; check the mirror "
        "or the registry URL",
    )
