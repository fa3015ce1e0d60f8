"""``pull``: get an artifact into the cache, verified, and return the path users load.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.settings import Settings
>>> art = load_registry().get("picodet-s-416").artifact("inference")
>>> pull(Store(Settings.from_env()), art).path                        # doctest: +SKIP
PosixPath('/tmp/zoo/unpacked/5f0c.../tree/picodet_s_416_coco_lcnet')

Hash pins come from the registry (``sha256``/``size``) or, when upstream publishes none, from
the pins file: the first verified download of a URL is recorded there and every later download
must match it.  A mismatch leaves the cache untouched and says how to accept the new file; a pin
is only ever replaced with ``update_lock=True`` (``--update-lock``).  Before a first pin the bytes
must be what the artifact kind is (:mod:`picozoo.hub.content`), so an HTML error page is never
pinned.  A full or read-only disk is a :class:`~picozoo.errors.DiskError`; a verified download
whose unpacking ran out of space is kept, and the next pull unpacks it without downloading again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import (
    DiskError,
    HashMismatchError,
    HashRequiredError,
    OfflineError,
    PicozooError,
)
from ..paddle_dir import check_inference_dir
from .content import check_head
from .disk import disk_error
from .download import DownloadResult, ProgressFn, download
from .partial import PartialDownload
from .pins import PinFile, PinnedHash
from .registry import INFERENCE_KINDS, Artifact
from .store import Entry, Ref, Store
from .unpack import check_unpacked, extract_tarball, read_manifest


@dataclass(frozen=True)
class Pin:
    """The hash an artifact must have, and where that requirement comes from."""

    sha256: str
    size: int | None
    source: str  # "registry" or the pins file path


def label_of(artifact: Artifact) -> str:
    return f"{artifact.model_id} {artifact.kind}"


def pin_of(artifact: Artifact, pins: PinFile, *, update_lock: bool = False) -> Pin | None:
    """The hash an artifact must have: the registry's, else the pins file's (unless updating)."""
    if artifact.sha256:
        return Pin(artifact.sha256, artifact.size, "registry")
    entry = pins.get(artifact.url)
    if entry is not None and not update_lock:
        return Pin(entry.sha256, entry.size, str(pins.path))
    return None


def pull(
    store: Store,
    artifact: Artifact,
    *,
    update_lock: bool = False,
    require_hashes: bool = False,
    progress: ProgressFn | None = None,
) -> Entry:
    """Make ``artifact`` available in the store, verified, and return its entry (``.path`` is
    the unpacked directory of a tarball, else the file). Mirrors, offline mode and the pins
    file come from the store's settings."""
    with _disk_errors(store):
        return _pull(store, artifact, update_lock, require_hashes, progress)


def pull_announced(
    store: Store, artifact: Artifact, say: Callable[[str], None] | None = None
) -> Entry:
    """:func:`pull`, first telling ``say`` when the artifact has to be downloaded (the
    progress line of every command that fetches what it needs).

    >>> pull_announced(store, model.artifact("onnx-nopp"), say=print).path  # doctest: +SKIP
    picodet-s-416: pulling onnx-nopp (picodet_s_416_coco_lcnet.onnx)
    PosixPath('.../files/bf8c4799.../picodet_s_416_coco_lcnet.onnx')
    """
    if say is not None and not store.offline and store.lookup(artifact) is None:
        say(f"{artifact.model_id}: pulling {artifact.kind} ({artifact.filename})")
    return pull(store, artifact)


def _pull(
    store: Store,
    artifact: Artifact,
    update_lock: bool,
    require_hashes: bool,
    progress: ProgressFn | None,
) -> Entry:
    pins = store.pins()
    pin = pin_of(artifact, pins, update_lock=update_lock)
    label = label_of(artifact)
    if require_hashes and pin is None:
        raise HashRequiredError(
            f"{label} has no pinned sha256 and --require-hashes is set",
            hint=f"pin it with `picozoo lock {artifact.model_id} --artifact {artifact.kind}` "
            "(or add sha256 to the registry)",
        )
    if update_lock and store.offline:
        raise OfflineError(
            "--update-lock needs a download, but offline mode is on",
            hint="drop --offline/PICOZOO_OFFLINE to accept a new upstream file",
        )
    entry = None if update_lock else _usable(store, artifact, pin)
    if entry is None and store.offline:
        raise _offline_error(store, artifact, pin)
    if entry is None:
        with store.mutex(artifact.url, on_wait=_waiter(label, progress)) as exclusive:
            if not update_lock:  # someone else may have finished meanwhile
                entry = _usable(store, artifact, pin)
            if entry is None:
                entry = _fetch_locked(store, artifact, pin, exclusive, progress, fresh=update_lock)
    if pin is None or pin.source != "registry":
        try:
            _record_pin(store, artifact, entry.sha256, entry.size, replace=update_lock)
        except HashMismatchError:  # pinned otherwise meanwhile: do not serve what we fetched
            store.drop_ref(artifact.url)
            raise
    store.touch(artifact.url)
    return entry


def _record_pin(
    store: Store, artifact: Artifact, sha: str, size: int, *, replace: bool, got: str = ""
) -> bool:
    """Pin ``artifact`` to ``sha``/``size`` unless it already is; returns whether the pins file
    changed. A different pin (recorded meanwhile by another process, say) is never replaced
    unless ``replace`` (``--update-lock``): that is a :class:`HashMismatchError`."""
    pins = store.pins()  # re-read: another process may have pinned this URL meanwhile
    current = pins.get(artifact.url)
    if current == PinnedHash(sha, size):
        return False
    if current is not None and not replace:
        pin = Pin(current.sha256, current.size, str(pins.path))
        raise _mismatch(artifact, pin, sha, size, got or "the download")
    pins.record(artifact.url, sha, size)
    pins.save()
    return True


@contextlib.contextmanager
def _disk_errors(store: Store) -> Iterator[None]:
    """Turn a full or read-only disk (cache or pins file) into one :class:`DiskError` line."""
    try:
        yield
    except OSError as e:
        err = disk_error(e, store.root)
        if err is None:
            raise
        raise err from e


def _usable(store: Store, artifact: Artifact, pin: Pin | None) -> Entry | None:
    """A cached, verified entry that satisfies the pin (cheap: no hashing)."""
    entry = store.lookup(artifact)
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
    store: Store,
    artifact: Artifact,
    pin: Pin | None,
    exclusive: bool,
    progress: ProgressFn | None,
    fresh: bool = False,
) -> Entry:
    label = label_of(artifact)
    # 1. A blob with the wanted content may already be here (same file under another URL, a
    #    ref removed, or an unpacked dir that needs redoing): re-hash it instead of downloading.
    ref = None if fresh else store.read_ref(artifact.url)
    for sha in dict.fromkeys(x for x in (pin and pin.sha256, ref and ref.sha256) if x):
        blob = store.blob_path(str(sha))
        if blob.is_file() and (pin is None or pin.sha256 == sha):
            if sha256_file(blob) == sha:
                return _install(store, artifact, blob, str(sha), blob.stat().st_size, "cache")
            _remove_corrupt(blob)
    # 2. Download into a .part (one per process when locking is unavailable).
    partial = store.partial(artifact.url)
    if not exclusive:
        partial = partial.per_process(os.getpid())
    part = partial.path
    result = _download(store, artifact, part, progress)
    if pin is not None and (
        result.sha256 != pin.sha256 or (pin.size is not None and result.size != pin.size)
    ):
        partial.discard()
        raise _mismatch(artifact, pin, result.sha256, result.size)
    if artifact.size is not None and result.size != artifact.size:
        partial.discard()
        raise HashMismatchError(
            f"{label}: downloaded {result.size} bytes, the registry says {artifact.size}",
            hint="the mirror serves a different file; try another --mirror or fix the registry",
        )
    manifest_dir = _unpack_keeping(store, artifact, partial, result)
    blob = store.blob_path(result.sha256)
    if blob.exists() and sha256_file(blob) != result.sha256:
        _remove_corrupt(blob)
    blob = store.store_blob(part, result.sha256)
    partial.discard()  # the resume validators (the bytes are in the blob now)
    return _write_ref(
        store, artifact, blob, result.sha256, result.size, result.source, manifest_dir
    )


def _unpack_keeping(
    store: Store, artifact: Artifact, partial: PartialDownload, result: DownloadResult
) -> Path | None:
    """Unpack a verified download: a refused archive discards it (its bytes are useless), a
    full or read-only disk keeps it so that the next pull does not download it again (Ctrl-C
    keeps it too)."""
    kept = "the verified download is kept and the next pull unpacks it without downloading again"
    try:
        return _unpack(store, artifact, partial.path, result.sha256)
    except DiskError as e:
        raise DiskError(e.message, hint="; ".join(x for x in (e.hint, kept) if x)) from e
    except PicozooError:
        partial.discard()
        raise
    except OSError as e:
        bare = OSError(e.errno, e.strerror)  # not the staging file's name: it is gone
        err = disk_error(bare, store.unpacked_root, need=result.size, kept=kept)
        if err is None:
            raise
        raise err from e


def _download(
    store: Store, artifact: Artifact, part: Path | None, progress: ProgressFn | None
) -> DownloadResult:
    """Download from the store's sources (mirrors or upstream) with its network settings,
    refusing bytes that are not what the artifact kind must be; redirects may go to a mirror
    or to the artifact's own host."""
    return download(
        store.sources(artifact.url),
        part,
        label=label_of(artifact),
        settings=store.settings.network,
        progress=progress,
        check=lambda head, content_type: check_head(artifact.filename, head, content_type),
        origins=[artifact.url],
    )


def _unpack(store: Store, artifact: Artifact, src: Path, sha: str) -> Path | None:
    """Extract a tarball (once per content hash); returns its unpacked dir, None otherwise."""
    if not artifact.is_tarball:
        return None
    label = label_of(artifact)
    udir = store.unpacked_dir(sha)
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
        extract_tarball(src, udir, label=label, check=check, limits=store.settings.unpack)
    elif check is not None:
        check(udir / str(manifest.get("root", "tree")))
    return udir


def _install(
    store: Store, artifact: Artifact, blob: Path, sha: str, size: int, source: str
) -> Entry:
    """Unpack (tarballs) an already verified blob and write the ref."""
    udir = _unpack(store, artifact, blob, sha)
    return _write_ref(store, artifact, blob, sha, size, source, udir)


def _write_ref(
    store: Store,
    artifact: Artifact,
    blob: Path,
    sha: str,
    size: int,
    source: str,
    udir: Path | None,
) -> Entry:
    unpacked_rel = None
    if udir is not None:
        manifest = read_manifest(udir) or {}
        unpacked_rel = udir.relative_to(store.root).as_posix()
        usable = udir / str(manifest.get("root", "tree"))
    else:
        usable = store.link_named(blob, sha, artifact.filename)
    store.write_ref(
        Ref(
            url=artifact.url,
            model_id=artifact.model_id,
            kind=artifact.kind,
            sha256=sha,
            size=size,
            blob=blob.relative_to(store.root).as_posix(),
            path=usable.relative_to(store.root).as_posix(),
            unpacked=unpacked_rel,
            verified=True,
            source=source,
            fetched_at=time.time(),
        )
    )
    entry = store.lookup(artifact)
    assert entry is not None
    return entry


def _remove_corrupt(blob: Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(blob, 0o644)
        blob.unlink()


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _mismatch(
    artifact: Artifact, pin: Pin, sha: str, size: int, got: str = "the download"
) -> HashMismatchError:
    label = label_of(artifact)
    where = "the registry" if pin.source == "registry" else f"pins file {pin.source}"
    msg = (
        f"sha256 mismatch for {label} ({artifact.url}): {where} pins {pin.sha256}"
        + (f" ({pin.size} bytes)" if pin.size is not None else "")
        + f", {got} is {sha} ({size} bytes); nothing was added to the cache"
    )
    if pin.source == "registry":
        hint = "the mirror serves a different file: try another --mirror, or fix the registry"
    else:
        hint = (
            "if upstream changed the file on purpose, accept it with `picozoo pull "
            f"{artifact.model_id} --artifact {artifact.kind} --update-lock`"
        )
    return HashMismatchError(msg, hint=hint)


def _offline_error(store: Store, artifact: Artifact, pin: Pin | None) -> OfflineError:
    label = label_of(artifact)
    entry = store.lookup(artifact)
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
    store: Store,
    artifact: Artifact,
    *,
    update: bool = False,
    progress: ProgressFn | None = None,
) -> PinResult:
    """Record ``artifact``'s sha256/size in the lock without keeping a downloaded copy.

    Uses the registry pin or a verified cache entry when there is one; otherwise streams the
    file through sha256 only (nothing is written to disk). An existing pin is only replaced
    with ``update=True``; one that disagrees with the registry is a :class:`HashMismatchError`.
    """
    with _disk_errors(store):
        return _pin_artifact(store, artifact, update, progress)


def _pin_artifact(
    store: Store, artifact: Artifact, update: bool, progress: ProgressFn | None
) -> PinResult:
    pins = store.pins()
    label = label_of(artifact)
    current = pins.get(artifact.url)
    if artifact.sha256 and artifact.size is not None and not update:
        sha, size, how = artifact.sha256, artifact.size, "registry"
    elif current is not None and not update:
        return PinResult(artifact, current.sha256, current.size, "already pinned", False)
    else:
        entry = store.lookup(artifact)
        if entry is not None and entry.verified and not update:
            sha, size, how = entry.sha256, entry.size, "cache"
        elif store.offline:
            raise OfflineError(
                f"offline mode: cannot hash {label}: it is not in the cache",
                hint="run `picozoo lock` online, or pull the artifact first",
            )
        else:
            r = _download(store, artifact, None, progress)
            sha, size, how = r.sha256, r.size, "download"
            if artifact.sha256 and sha != artifact.sha256:
                raise _mismatch(
                    artifact, Pin(artifact.sha256, artifact.size, "registry"), sha, size
                )
    got = "the registry's pin" if how == "registry" else ""
    changed = _record_pin(store, artifact, sha, size, replace=update, got=got)
    return PinResult(artifact, sha, size, how, changed)
