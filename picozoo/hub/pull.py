"""``pull``: get an artifact into the cache, verified, and return the path users load.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.settings import Settings
>>> art = load_registry().get("picodet-s-416").artifact("inference")
>>> pull(Store(Settings.from_env()), art).path                        # doctest: +SKIP
PosixPath('/tmp/zoo/unpacked/5f0c.../tree/picodet_s_416_coco_lcnet')

Hash pins come from the registry (``sha256``/``size``) or, when upstream publishes none, from
the pins file: the first verified download of a URL is recorded there and every later download
must match it.  A mismatch leaves the cache untouched and says how to accept the new file.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import HashMismatchError, HashRequiredError, OfflineError, PicozooError
from ..paddle_dir import check_inference_dir
from .download import DownloadResult, ProgressFn, discard_part, download
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
    if (pin is None or pin.source != "registry") and pins.get(artifact.url) != PinnedHash(
        entry.sha256, entry.size
    ):
        pins.record(artifact.url, entry.sha256, entry.size)
        pins.save()
    store.touch(artifact.url)
    return entry


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
    part = store.part_path(artifact.url)
    if not exclusive:
        part = part.with_name(f"{part.name}.{os.getpid()}")
    result = _download(store, artifact, part, progress)
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
        manifest_dir = _unpack(store, artifact, part, result.sha256)
    except PicozooError:  # a refused archive: its bytes are useless (Ctrl-C keeps the .part)
        discard_part(part)
        raise
    blob = store.blob_path(result.sha256)
    if blob.exists() and sha256_file(blob) != result.sha256:
        _remove_corrupt(blob)
    blob = store.store_blob(part, result.sha256)
    return _write_ref(
        store, artifact, blob, result.sha256, result.size, result.source, manifest_dir
    )


def _download(
    store: Store, artifact: Artifact, part: Path | None, progress: ProgressFn | None
) -> DownloadResult:
    """Download from the store's sources (mirrors or upstream) with its network settings."""
    return download(
        store.sources(artifact.url),
        part,
        label=label_of(artifact),
        settings=store.settings.network,
        progress=progress,
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
        extract_tarball(src, udir, label=label, check=check)
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


def _mismatch(artifact: Artifact, pin: Pin, sha: str, size: int) -> HashMismatchError:
    label = label_of(artifact)
    where = "the registry" if pin.source == "registry" else f"pins file {pin.source}"
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
    file through sha256 only (nothing is written to disk).
    """
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
    changed = current is None or current.sha256 != sha or current.size != size
    if changed:
        pins.record(artifact.url, sha, size)
        pins.save()
    return PinResult(artifact, sha, size, how, changed)
