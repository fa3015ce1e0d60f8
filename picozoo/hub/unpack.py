"""Safe tarball extraction with a manifest of hashes.

Every member is checked *before* anything is written, on every Python version (this does not
rely on ``tarfile``'s ``data`` filter, which older Pythons lack): absolute paths, ``..``
components, duplicate names, links whose target leaves the archive root, members below a
symlink, devices, FIFOs and any other special type are refused.  Files are then written by
picozoo itself (``O_EXCL | O_NOFOLLOW``, sanitised modes) into a temporary directory next to the
target, hashed while written, and the directory is renamed into place only when complete.

>>> m = extract_tarball(Path("x.tar"), Path("cache/unpacked/5f0c"))   # doctest: +SKIP
>>> m["root"], sorted(m["files"])                                    # doctest: +SKIP
('tree/picodet_s_416_coco_lcnet', ['picodet_s_416_coco_lcnet/infer_cfg.yml', ...])
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text, copy_hashing
from ..errors import BadArchiveError, UnsafeArchiveError

MANIFEST = "manifest.json"
TREE = "tree"


def check_members(members: list[tarfile.TarInfo], label: str = "archive") -> list[str]:
    """Validate every member; return the normalised names.  Raises UnsafeArchiveError."""
    names = [_normalise(m.name, label) for m in members]
    symlinks = {n for m, n in zip(members, names, strict=True) if m.issym()}
    seen: set[str] = set()
    for m, name in zip(members, names, strict=True):
        if name in seen:
            _refuse(label, m.name, "appears twice (a later copy could replace the first)")
        for parent in _parents(name):
            if parent in symlinks:
                _refuse(label, m.name, f"lies below the symlink {parent!r}")
        if m.isreg() or m.isdir():
            pass
        elif m.issym():
            _check_symlink(label, m, name, symlinks)
        elif m.islnk():
            target = _normalise(m.linkname, label, what="hard link target", member=m.name)
            if target not in seen or target in symlinks:
                _refuse(label, m.name, f"is a hard link to {m.linkname!r}, not an earlier file")
        elif m.ischr() or m.isblk():
            _refuse(label, m.name, "is a device node")
        elif m.isfifo():
            _refuse(label, m.name, "is a FIFO")
        else:
            _refuse(label, m.name, f"has unsupported type {m.type!r}")
        seen.add(name)
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
) -> dict[str, Any]:
    """Extract ``tar_path`` into ``dest`` (which must not exist) via ``dest.parent/.tmp-*``.

    ``dest`` then holds ``tree/`` (the archive content) and ``manifest.json``; the manifest
    (returned) maps each extracted file, relative to ``tree/``, to its sha256 and size, and
    ``root`` is the usable directory relative to ``dest`` (``tree/<top>`` when the archive has a
    single top-level directory, as upstream's do).  ``check(root)`` runs on the extracted root
    before the rename; if it raises, nothing is left behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        manifest = _extract_into(tar_path, tmp, label)
        if check is not None:
            check(tmp / str(manifest["root"]))
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / MANIFEST).is_file():
                raise
            # another process unpacked the same blob meanwhile: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return read_manifest(dest) or manifest
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
def _extract_into(tar_path: Path, tmp: Path, label: str) -> dict[str, Any]:
    tree = tmp / TREE
    tree.mkdir()
    files: dict[str, dict[str, Any]] = {}
    try:
        tf = tarfile.open(tar_path, "r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as e:
        raise BadArchiveError(f"{label} is not a readable tarball: {e}") from e
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, EOFError) as e:
            raise BadArchiveError(f"{label} is a truncated or corrupt tarball: {e}") from e
        names = check_members(members, label)
        for m, name in zip(members, names, strict=True):
            target = tree / name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                os.symlink(m.linkname, target)
                continue
            src_name = _normalise(m.linkname, label) if m.islnk() else name
            if m.islnk():  # copy, never link: the link target is an earlier regular file
                with open(tree / src_name, "rb") as f:
                    files[name] = _write(f, target, m.mode)
                continue
            fobj = tf.extractfile(m)
            if fobj is None:
                raise BadArchiveError(f"{label}: cannot read member {m.name!r}")
            with fobj:
                files[name] = _write(fobj, target, m.mode)
                if files[name]["size"] != m.size:
                    raise BadArchiveError(f"{label}: member {m.name!r} is truncated")
    tops = {n.split("/", 1)[0] for n in names}
    root = TREE
    if len(tops) == 1:
        (top,) = tops
        if (tree / top).is_dir() and not (tree / top).is_symlink():
            root = f"{TREE}/{top}"
    return {"version": 1, "root": root, "files": files, "members": names}


def _write(src: Any, target: Path, mode: int) -> dict[str, Any]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    perm = 0o755 if mode & 0o111 else 0o644
    fd = os.open(target, flags, perm)
    with os.fdopen(fd, "wb") as out:
        sha, n = copy_hashing(src, out)
    with contextlib.suppress(OSError):
        os.chmod(target, perm & ~(stat.S_ISUID | stat.S_ISGID))
    return {"sha256": sha, "size": n}


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
