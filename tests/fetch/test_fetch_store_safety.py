"""The store never writes outside the cache through planted symlinks, and follows one
permissions policy (issue 9, items 8 and 9). Real pulls from a real loopback server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.artifacts import build_mirror, sha256_file, tree_snapshot
from support.http_server import LoopbackServer, serve_directory
from support.store import store_at

from picozoo import atomic
from picozoo.errors import TamperedStoreError
from picozoo.hub.maintenance import prune
from picozoo.hub.pins import PinFile
from picozoo.hub.pull import pull
from picozoo.hub.registry import Artifact, load_registry
from picozoo.hub.store import Ref, Store

MODEL = "picodet-s-416"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopbackServer, dict]]:
    root = tmp_path_factory.mktemp("zoo")
    files = build_mirror(load_registry(), root / "mirror", root, [MODEL], ("inference", "weights"))
    with serve_directory(root / "mirror") as srv:
        yield srv, files


def artifact(kind: str) -> Artifact:
    return load_registry().get(MODEL).artifact(kind)


# -- item 8: one permissions policy --------------------------------------------------------
@pytest.mark.parametrize(("umask", "folder", "meta", "content"), [
    (0o022, 0o755, 0o644, 0o444),
    (0o027, 0o750, 0o640, 0o440),
])  # fmt: skip
@pytest.mark.slow
def test_one_permissions_policy_for_everything_in_the_store(
    served: Any, tmp_path: Path, umask: int, folder: int, meta: int, content: int
) -> None:
    srv, _ = served
    old = os.umask(umask)
    atomic._umask.cache_clear()  # the policy reads the umask once per process
    try:
        store = store_at(tmp_path / "cache", mirrors=srv.url)
        tar = pull(store, artifact("inference"))
        weights = pull(store, artifact("weights"))
        staging = store.staging_dir(store.converted_root / "m")
    finally:
        os.umask(old)
        atomic._umask.cache_clear()
    modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in store.root.rglob("*")}
    folders = {p for p in modes if p.is_dir()}
    assert staging in folders  # mkdtemp's private 0o700 is not the policy
    assert {p: m for p, m in modes.items() if p in folders and m != folder} == {}
    contents = {tar.blob, weights.blob, weights.path, *tar.path.rglob("*")}
    assert {p: oct(m) for p, m in modes.items() if p in contents and m != content} == {}
    metadata = {store.ref_path(tar.url), store.used_path(tar.url), store.root / "picozoo.lock"}
    metadata.add(tar.unpacked / "manifest.json")  # type: ignore[operator]
    assert {p: oct(m) for p, m in modes.items() if p in metadata and m != meta} == {}
    assert os.path.samefile(weights.path, weights.blob)


# -- item 9: planted symlinks --------------------------------------------------------------
class Victim:
    """Files and a folder outside the cache that a planted link points at."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "victim-dir"
        self.dir.mkdir(parents=True)
        self.file = root / "victim.txt"
        self.file.write_text("precious\n")
        self.before = self.state()

    def state(self) -> tuple[Any, ...]:
        st = self.file.stat()
        return (
            self.file.read_bytes(), st.st_mtime_ns, st.st_mode, tree_snapshot(self.root),
            self.dir.stat().st_mtime_ns,
        )  # fmt: skip

    def untouched(self) -> bool:
        return self.state() == self.before


def _plant(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _pin(store: Store, art: Artifact, published: Path) -> str:
    sha = sha256_file(published)
    pins = PinFile.load(store.root / "picozoo.lock")
    pins.record(art.url, sha, published.stat().st_size)
    pins.save()
    return sha


Plant = Callable[[Store, Artifact, Path, Victim], None]
PLANTS: dict[str, Plant] = {
    "mutex file": lambda s, a, p, v: _plant(s.mutex_path(a.url), v.file),
    "mutex file (dangling)": lambda s, a, p, v: _plant(s.mutex_path(a.url), v.dir / "new"),
    ".part": lambda s, a, p, v: _plant(s.part_path(a.url), v.file),
    ".part.json": lambda s, a, p, v: _plant(
        s.part_path(a.url).with_name(s.part_path(a.url).name + ".json"), v.file
    ),
    "ref": lambda s, a, p, v: _plant(s.ref_path(a.url), v.file),
    "use stamp": lambda s, a, p, v: _plant(s.used_path(a.url), v.file),
    "blob": lambda s, a, p, v: _plant(s.blob_path(_pin(s, a, p)), v.file),
    "blobs folder": lambda s, a, p, v: _plant(s.root / "blobs" / "sha256", v.dir),
    "unpacked folder": lambda s, a, p, v: _plant(s.root / "unpacked", v.dir),
    "unpacked dir": lambda s, a, p, v: _plant(s.unpacked_dir(sha256_file(p)), v.dir),
    "downloads folder": lambda s, a, p, v: _plant(s.root / "downloads", v.dir),
    "locks folder": lambda s, a, p, v: _plant(s.root / "locks", v.dir),
    "refs folder": lambda s, a, p, v: _plant(s.root / "refs", v.dir),
    "pins file": lambda s, a, p, v: _plant(s.root / "picozoo.lock", v.file),
    "pins mutex": lambda s, a, p, v: _plant(s.root / ".picozoo.lock.mutex", v.file),
}


@pytest.mark.parametrize(
    ("where", "locking"),
    [(where, "auto") for where in sorted(PLANTS)]
    + [("mutex file", "soft"), ("mutex file (dangling)", "soft")],  # soft locks open it too
)
@pytest.mark.slow
def test_planted_symlink_is_refused_and_nothing_outside_is_written(
    served: Any, tmp_path: Path, where: str, locking: str
) -> None:
    srv, files = served
    art = artifact("inference")
    store = store_at(tmp_path / "cache", mirrors=srv.url, locking=locking)
    victim = Victim(tmp_path / "outside")
    PLANTS[where](store, art, files[(MODEL, "inference")], victim)
    with pytest.raises(TamperedStoreError, match=r"refusing to use .*symlink"):
        pull(store, art)
    assert victim.untouched()
    for blob in (store.root / "blobs" / "sha256").glob("*"):
        assert not blob.is_symlink() or where == "blob"  # a blob is never made a link


@pytest.mark.slow
def test_named_file_folder_link_and_cli_exit_code(served: Any, tmp_path: Path) -> None:
    srv, files = served
    sha = sha256_file(files[(MODEL, "weights")])
    victim = Victim(tmp_path / "outside")
    cache = tmp_path / "cache"
    _plant(store_at(cache).root / "files" / sha[:16], victim.dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    env.update(PICOZOO_CACHE=str(cache), PICOZOO_MIRROR=srv.url)
    r = subprocess.run(
        [sys.executable, "-m", "picozoo", "pull", MODEL, "-a", "weights"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 6, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"picozoo: error: refusing to use {cache}/files/{sha[:16]}: ")
    assert "delete it" in r.stderr
    assert victim.untouched()


def test_blob_from_a_planted_part_is_never_a_link(tmp_path: Path) -> None:
    store = store_at(tmp_path / "cache")
    victim = Victim(tmp_path / "outside")
    part = tmp_path / "cache" / "downloads" / "x.part"
    _plant(part, victim.file)
    with pytest.raises(TamperedStoreError):
        store.store_blob(part, "ab" * 32)
    assert not store.blob_path("ab" * 32).exists() and victim.untouched()


def test_open_nofollow_refuses_links_fifos_and_shared_inodes(tmp_path: Path) -> None:
    victim = Victim(tmp_path / "outside")
    (tmp_path / "link").symlink_to(victim.file)
    os.mkfifo(tmp_path / "fifo")
    os.link(victim.file, tmp_path / "hard")
    for name, mode in (("link", "ab"), ("link", "rb"), ("fifo", "ab"), ("fifo", "rb")):
        with pytest.raises(TamperedStoreError):
            atomic.open_nofollow(tmp_path / name, mode)
    with pytest.raises(TamperedStoreError, match="2 hard links"):
        atomic.open_nofollow(tmp_path / "hard", "ab")
    with atomic.open_nofollow(tmp_path / "new", "ab") as f:
        f.write(b"ok")
    assert (tmp_path / "new").read_bytes() == b"ok"
    os.unlink(tmp_path / "hard")
    assert victim.untouched()


def test_prune_and_staging_never_follow_a_linked_converted_folder(tmp_path: Path) -> None:
    store = store_at(tmp_path / "cache")
    victim = Victim(tmp_path / "outside")
    old_staging = victim.dir / ".tmp-keep"
    old_staging.mkdir()
    os.utime(old_staging, (0, 0))
    victim.before = victim.state()
    (store.root / "converted").mkdir(parents=True)
    _plant(store.root / "converted" / "m", victim.dir)
    with pytest.raises(TamperedStoreError):
        store.staging_dir(store.root / "converted" / "m")
    with pytest.raises(TamperedStoreError):
        store.converted_dir("m", "k")
    assert store.converted() == []
    prune(store)
    assert old_staging.is_dir() and victim.untouched()


def test_refs_pointing_outside_the_cache_are_ignored(tmp_path: Path) -> None:
    store = store_at(tmp_path / "cache")
    base = {"url": "https://h/x.onnx", "sha256": "ab" * 32, "verified": True}
    for bad in ({"path": "/etc/passwd"}, {"path": "files/../../x"}, {"unpacked": "../u"}):
        assert Ref.from_json({**base, **bad}) is None
    ok = Ref.from_json({**base, "path": "files/abababababababab/x.onnx"})
    assert ok is not None
    store.ref_path(ok.url).parent.mkdir(parents=True)
    store.ref_path(ok.url).write_text(json.dumps({**base, "path": "/etc/passwd"}))
    assert store.read_ref(ok.url) is None and store.entries() == []
