"""A full disk and a read-only cache, on real small file systems (tmpfs mounts with ``size=``;
skipped where mounting is not permitted).

Expected: one ``DiskError`` line (exit 12) naming the path and what to free, nothing
half-written in the cache, and a verified download kept when only unpacking ran out of space.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.artifacts import build_mirror, sha256_file
from support.http_server import serve_directory
from support.store import pull, store_at

from picozoo.errors import DiskError
from picozoo.hub.registry import load_registry

MODEL = "picodet-s-416"
Mount = Callable[[str, str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``tmpfs(name, options)`` mounts a tmpfs at ``tmp_path/name`` (unmounted afterwards)."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        r = _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target))
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        if _run("umount", str(target)).returncode != 0:
            _run("umount", "-l", str(target))


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)


def remount(target: Path, options: str) -> None:
    r = _run("mount", "-o", f"remount,{options}", str(target))
    assert r.returncode == 0, r.stderr


def picozoo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "picozoo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})


@pytest.fixture
def zoo(tmp_path: Path):
    """(artifact, mirror dir, published tarball of about 2 MB)."""
    reg = load_registry()
    files = build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL], nbytes=400_000)
    return reg.get(MODEL).artifact("inference"), tmp_path / "mirror", files[(MODEL, "inference")]


@pytest.mark.slow
def test_disk_full_while_downloading_is_one_line_exit_12(zoo, tmpfs: Mount) -> None:
    art, mirror, _ = zoo
    cache = tmpfs("cache", "size=512k")
    with serve_directory(mirror) as srv:
        r = picozoo("pull", MODEL, PICOZOO_CACHE=str(cache), PICOZOO_MIRROR=srv.url)
    assert r.returncode == 12, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("picozoo: error: no space left"), lines
    part = store_at(cache).part_path(art.url)
    assert str(part) in lines[0] and "free " in lines[0] and "MB or more" in lines[0]
    assert "Traceback" not in r.stderr
    assert not [p for p in cache.rglob("*") if p.is_file() and p.parent.name in ("blobs", "refs")]
    assert store_at(cache).lookup(art) is None


def test_disk_full_while_unpacking_keeps_the_verified_download(zoo, tmpfs: Mount) -> None:
    art, mirror, published = zoo
    size = published.stat().st_size
    # room for the download, not for the download and its unpacked copy
    cache_dir = tmpfs("cache", f"size={(size + 600_000) // 4096 * 4096}")
    cache = store_at(cache_dir)
    with serve_directory(mirror) as srv:
        with pytest.raises(DiskError) as ei:
            pull(art, cache_dir=cache_dir, mirrors=srv.url)
        assert ei.value.exit_code == 12
        msg = str(ei.value)
        assert str(cache.unpacked_root) in msg and "without downloading again" in msg
        assert cache.part_path(art.url).stat().st_size == size  # kept, complete
        assert cache.lookup(art) is None
        assert not cache.unpacked_root.exists() or not list(cache.unpacked_root.iterdir())
        remount(cache_dir, "size=16m")  # the user frees space
        path = pull(art, cache_dir=cache_dir, mirrors=srv.url)
        assert srv.stats.full_gets[art.url_path] == 1  # not downloaded again
        assert srv.total_bytes(art.url_path) == size
    entry = cache.lookup(art)
    assert entry is not None and entry.sha256 == sha256_file(published)
    assert (path / "infer_cfg.yml").is_file()
    assert not list(cache.downloads_dir.iterdir())  # .part and its validators are gone


@pytest.mark.slow
def test_read_only_cache_is_one_line_exit_12(zoo, tmpfs: Mount) -> None:
    empty = tmpfs("empty", "size=1m,ro")
    with serve_directory(zoo[1]) as srv:
        r = picozoo("pull", MODEL, PICOZOO_CACHE=str(empty), PICOZOO_MIRROR=srv.url)
    assert r.returncode == 12, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Read-only file system" in lines[0], lines
    assert str(empty) in lines[0] and "--cache" in lines[0]
    assert list(empty.iterdir()) == []


def test_a_read_only_cache_still_serves_what_it_holds(zoo, tmpfs: Mount) -> None:
    art, mirror, _ = zoo
    cache = tmpfs("cache", "size=8m")
    with serve_directory(mirror) as srv:
        first = pull(art, cache_dir=cache, mirrors=srv.url)
        remount(cache, "ro")
        assert pull(art, cache_dir=cache, mirrors=srv.url) == first
        assert srv.stats.requests[art.url_path] == 1


def test_a_read_only_pins_file_is_named(zoo, tmpfs: Mount, tmp_path: Path) -> None:
    art, mirror, _ = zoo
    lock_dir = tmpfs("lock", "size=1m,ro")
    with serve_directory(mirror) as srv, pytest.raises(DiskError) as ei:
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url, lock_path=lock_dir / "zoo.lock")
    assert str(lock_dir) in ei.value.message and "Read-only file system" in ei.value.message
