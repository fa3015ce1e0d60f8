"""``pull``: get an artifact into the cache, verified, and return the path users load.

>>> from picozoo.registry import load_registry
>>> art = load_registry().get("picodet-s-416").artifact("inference")
>>> pull(art, cache_dir=Path("/tmp/zoo"))                              # doctest: +SKIP
PosixPath('/tmp/zoo/unpacked/5f0c.../tree/picodet_s_416_coco_lcnet')

Hash pins come from the registry (``sha256``/``size``) or, when upstream publishes none, from
the lock file: the first verified download of a URL is recorded there and every later download
must match it.  A mismatch leaves the cache untouched and says how to accept the new file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import sha256_file
from .cache import Cache, CacheEntry
from .download import ProgressFn, discard_part, download
from .errors import PicozooError
from .filelock import FileLock
from .lockfile import Lock, default_lock_path
from .mirror import resolve_mirrors, source_urls
from .registry import INFERENCE_KINDS, Artifact
from .unpack import check_inference_dir, check_unpacked, extract_tarball, read_manifest

ENV_OFFLINE = "PICOZOO_OFFLINE"


class HashMismatchError(PicozooError):
    """A download does not match its pinned sha256/size."""

    exit_code = 6


class HashRequiredError(PicozooError):
    """``--require-hashes`` and the artifact has no pinned hash."""

    exit_code = 6


class OfflineError(PicozooError):
    """Offline mode and the artifact is not (verified) in the cache."""

    exit_code = 7


@dataclass(frozen=True)
class Pin:
    sha256: str
    size: int | None
    source: str  # "registry" or the lock file path


def is_offline(offline: bool | None) -> bool:
    """``offline`` if given, else ``$PICOZOO_OFFLINE`` (1/true/yes)."""
    if offline is not None:
        return offline
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def label_of(artifact: Artifact) -> str:
    return f"{artifact.model_id} {artifact.kind}"


def pin_of(artifact: Artifact, lock: Lock, *, update_lock: bool = False) -> Pin | None:
    """The hash an artifact must have: the registry's, else the lock's (unless updating)."""
    if artifact.sha256:
        return Pin(artifact.sha256, artifact.size, "registry")
    entry = lock.get(artifact.url)
    if entry is not None and not update_lock:
        return Pin(entry.sha256, entry.size, str(lock.path))
    return None


def pull(
    artifact: Artifact,
    *,
    cache_dir: Path,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    lock_path: Path | None = None,
    update_lock: bool = False,
    require_hashes: bool = False,
    progress: ProgressFn | None = None,
) -> Path:
    """Make ``artifact`` available in the cache and return its usable path (the unpacked
    directory of a tarball, else the file).  See :func:`pull_entry`."""
    return pull_entry(
        artifact,
        cache_dir=cache_dir,
        mirrors=mirrors,
        offline=offline,
        lock_path=lock_path,
        update_lock=update_lock,
        require_hashes=require_hashes,
        progress=progress,
    ).path


def pull_entry(
    artifact: Artifact,
    *,
    cache_dir: Path,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    lock_path: Path | None = None,
    update_lock: bool = False,
    require_hashes: bool = False,
    progress: ProgressFn | None = None,
) -> CacheEntry:
    """Like :func:`pull` but returns the whole :class:`~picozoo.cache.CacheEntry`."""
    cache = Cache(cache_dir)
    lock = Lock.load(lock_path or default_lock_path(cache.root))
    pin = pin_of(artifact, lock, update_lock=update_lock)
    label = label_of(artifact)
    if require_hashes and pin is None:
        raise HashRequiredError(
            f"{label} has no pinned sha256 and --require-hashes is set",
            hint=f"pin it with `picozoo lock {artifact.model_id} --artifact {artifact.kind}` "
            "(or add sha256 to the registry)",
        )
    offline = is_offline(offline)
    if update_lock and offline:
        raise OfflineError(
            "--update-lock needs a download, but offline mode is on",
            hint="drop --offline/PICOZOO_OFFLINE to accept a new upstream file",
        )
    entry = None if update_lock else _usable(cache, artifact, pin)
    if entry is None and offline:
        raise _offline_error(cache, artifact, pin)
    if entry is None:
        info_wait = _waiter(label, progress)
        with FileLock(cache.lock_path(artifact.url), on_wait=info_wait) as flock:
            if not update_lock:  # someone else may have finished meanwhile
                entry = _usable(cache, artifact, pin)
            if entry is None:
                entry = _fetch_locked(
                    cache,
                    artifact,
                    pin,
                    resolve_mirrors(mirrors),
                    flock.exclusive,
                    progress,
                    fresh=update_lock,
                )
    if (pin is None or pin.source != "registry") and lock.get(artifact.url) != _as_lock_entry(
        entry
    ):
        lock.record(artifact.url, entry.sha256, entry.size)
        lock.save()
    cache.touch(artifact.url)
    return entry


def _as_lock_entry(entry: CacheEntry) -> Any:
    from .lockfile import LockEntry

    return LockEntry(entry.sha256, entry.size)


def _usable(cache: Cache, artifact: Artifact, pin: Pin | None) -> CacheEntry | None:
    """A cached, verified entry that satisfies the pin (cheap: no hashing)."""
    entry = cache.lookup(artifact)
    if entry is None or not entry.verified:
        return None
    if pin is not None and (
        entry.sha256 != pin.sha256 or (pin.size is not None and entry.size != pin.size)
    ):
        return None
    if entry.unpacked is None and entry.blob.stat().st_size != entry.size:
        return None
    return entry


def _fetch_locked(
    cache: Cache,
    artifact: Artifact,
    pin: Pin | None,
    mirrors: list[str],
    exclusive: bool,
    progress: ProgressFn | None,
    fresh: bool = False,
) -> CacheEntry:
    label = label_of(artifact)
    # 1. A blob with the wanted content may already be here (same file under another URL, a
    #    ref removed, or an unpacked dir that needs redoing): re-hash it instead of downloading.
    ref = None if fresh else cache.read_ref(artifact.url)
    for sha in dict.fromkeys(x for x in (pin and pin.sha256, ref and ref.get("sha256")) if x):
        blob = cache.blob_path(str(sha))
        if blob.is_file() and (pin is None or pin.sha256 == sha):
            if sha256_file(blob) == sha:
                return _install(cache, artifact, blob, str(sha), blob.stat().st_size, "cache")
            _remove_corrupt(blob)
    # 2. Download into a .part (one per process when locking is unavailable).
    part = cache.part_path(artifact.url)
    if not exclusive:
        part = part.with_name(f"{part.name}.{os.getpid()}")
    result = download(source_urls(artifact.url, mirrors), part, label=label, progress=progress)
    if pin is not None and (
        result.sha256 != pin.sha256 or (pin.size is not None and result.size != pin.size)
    ):
        discard_part(part)
        raise _mismatch(artifact, pin, result.sha256, result.size)
    if artifact.size is not None and result.size != artifact.size:
        discard_part(part)
        raise HashMismatchError(
            f"{label}: downloaded {result.size} bytes, the registry says {artifact.size}",
            hint="the mirror serves a different file; try another --mirror or fix the registry",
        )
    try:
        manifest_dir = _unpack(cache, artifact, part, result.sha256)
    except PicozooError:  # a refused archive: its bytes are useless (Ctrl-C keeps the .part)
        discard_part(part)
        raise
    blob = cache.blob_path(result.sha256)
    if blob.exists() and sha256_file(blob) != result.sha256:
        _remove_corrupt(blob)
    blob = cache.store_blob(part, result.sha256)
    return _write_ref(
        cache, artifact, blob, result.sha256, result.size, result.source, manifest_dir
    )


def _unpack(cache: Cache, artifact: Artifact, src: Path, sha: str) -> Path | None:
    """Extract a tarball (once per content hash); returns its unpacked dir, None otherwise."""
    if not artifact.is_tarball:
        return None
    label = label_of(artifact)
    udir = cache.unpacked_dir(sha)
    check = (
        (lambda root: check_inference_dir(root, label))
        if artifact.kind in INFERENCE_KINDS
        else None
    )
    manifest = read_manifest(udir)
    if manifest is not None and check_unpacked(udir)[1]:
        manifest = None  # files were changed on disk since unpacking: unpack afresh
    if manifest is None:
        if udir.exists():  # damaged, or a leftover without a manifest: not ours to trust
            _remove_tree(udir)
        extract_tarball(src, udir, label=label, check=check)
    elif check is not None:
        check(udir / str(manifest.get("root", "tree")))
    return udir


def _install(
    cache: Cache, artifact: Artifact, blob: Path, sha: str, size: int, source: str
) -> CacheEntry:
    """Unpack (tarballs) an already verified blob and write the ref."""
    udir = _unpack(cache, artifact, blob, sha)
    return _write_ref(cache, artifact, blob, sha, size, source, udir)


def _write_ref(
    cache: Cache,
    artifact: Artifact,
    blob: Path,
    sha: str,
    size: int,
    source: str,
    udir: Path | None,
) -> CacheEntry:
    unpacked_rel = None
    if udir is not None:
        manifest = read_manifest(udir) or {}
        unpacked_rel = udir.relative_to(cache.root).as_posix()
        usable = udir / str(manifest.get("root", "tree"))
    else:
        usable = cache.link_named(blob, sha, artifact.filename)
    path_rel = usable.relative_to(cache.root).as_posix()
    now = time.time()
    cache.write_ref(
        artifact.url,
        {
            "url": artifact.url,
            "model_id": artifact.model_id,
            "kind": artifact.kind,
            "sha256": sha,
            "size": size,
            "blob": blob.relative_to(cache.root).as_posix(),
            "unpacked": unpacked_rel,
            "path": path_rel,
            "verified": True,
            "source": source,
            "fetched_at": now,
        },
    )
    entry = cache.lookup(artifact)
    assert entry is not None
    return entry


def _remove_corrupt(blob: Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(blob, 0o644)
        blob.unlink()


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _mismatch(artifact: Artifact, pin: Pin, sha: str, size: int) -> HashMismatchError:
    label = label_of(artifact)
    where = "the registry" if pin.source == "registry" else f"lock file {pin.source}"
    msg = (
        f"sha256 mismatch for {label} ({artifact.url}): {where} pins {pin.sha256}"
        + (f" ({pin.size} bytes)" if pin.size is not None else "")
        + f", the download is {sha} ({size} bytes); nothing was added to the cache"
    )
    if pin.source == "registry":
        hint = "the mirror serves a different file: try another --mirror, or fix the registry"
    else:
        hint = (
            "if upstream changed the file on purpose, accept it with `picozoo pull "
            f"{artifact.model_id} --artifact {artifact.kind} --update-lock`"
        )
    return HashMismatchError(msg, hint=hint)


def _offline_error(cache: Cache, artifact: Artifact, pin: Pin | None) -> OfflineError:
    label = label_of(artifact)
    entry = cache.lookup(artifact)
    if entry is not None and not entry.verified:
        why = "its cached copy failed verification"
    elif entry is not None and pin is not None:
        why = f"the cached copy does not match the pinned sha256 {pin.sha256}"
    else:
        why = "it is not in the cache"
    return OfflineError(
        f"offline mode: cannot provide {label}: {why}",
        hint=f"pull it once without --offline/PICOZOO_OFFLINE (`picozoo pull {artifact.model_id} "
        f"--artifact {artifact.kind}`), or point PICOZOO_MIRROR at a file:// mirror and go online",
    )


def _waiter(label: str, progress: ProgressFn | None) -> Any:
    def on_wait() -> None:
        import sys

        print(f"waiting for another picozoo process to finish {label}...", file=sys.stderr)

    return on_wait if progress is not None else None


# -- pinning without keeping a copy ---------------------------------------------------------
@dataclass(frozen=True)
class PinResult:
    artifact: Artifact
    sha256: str
    size: int
    how: str  # "registry", "already pinned", "cache", "download"
    changed: bool


def pin_artifact(
    artifact: Artifact,
    *,
    cache_dir: Path,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
    lock_path: Path | None = None,
    update: bool = False,
    progress: ProgressFn | None = None,
) -> PinResult:
    """Record ``artifact``'s sha256/size in the lock without keeping a downloaded copy.

    Uses the registry pin or a verified cache entry when there is one; otherwise streams the
    file through sha256 only (nothing is written to disk).
    """
    cache = Cache(cache_dir)
    lock = Lock.load(lock_path or default_lock_path(cache.root))
    label = label_of(artifact)
    current = lock.get(artifact.url)
    if artifact.sha256 and artifact.size is not None and not update:
        sha, size, how = artifact.sha256, artifact.size, "registry"
    elif current is not None and not update:
        return PinResult(artifact, current.sha256, current.size, "already pinned", False)
    else:
        entry = cache.lookup(artifact)
        if entry is not None and entry.verified and not update:
            sha, size, how = entry.sha256, entry.size, "cache"
        elif is_offline(offline):
            raise OfflineError(
                f"offline mode: cannot hash {label}: it is not in the cache",
                hint="run `picozoo lock` online, or pull the artifact first",
            )
        else:
            r = download(
                source_urls(artifact.url, resolve_mirrors(mirrors)),
                None,
                label=label,
                progress=progress,
            )
            sha, size, how = r.sha256, r.size, "download"
            if artifact.sha256 and sha != artifact.sha256:
                raise _mismatch(
                    artifact, Pin(artifact.sha256, artifact.size, "registry"), sha, size
                )
    changed = current is None or current.sha256 != sha or current.size != size
    if changed:
        lock.record(artifact.url, sha, size)
        lock.save()
    return PinResult(artifact, sha, size, how, changed)
