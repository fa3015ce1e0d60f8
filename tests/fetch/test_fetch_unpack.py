"""Tarball safety: hostile members are refused before anything is written outside the temp area."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from support.artifacts import (
    INFER_CFG,
    make_inference_dir,
    make_inference_tarball,
    make_tarball,
    publish,
    tree_snapshot,
)
from support.http_server import serve_directory
from support.store import pull, store_at

from picozoo.errors import ArchiveTooLargeError, BadArchiveError, UnsafeArchiveError
from picozoo.hub.registry import load_registry
from picozoo.hub.unpack import extract_tarball
from picozoo.settings import UnpackLimits

MODEL = "picodet-s-416"
TOP = "picodet_s_416_coco_lcnet"
GOOD = [
    {"name": TOP, "type": tarfile.DIRTYPE, "mode": 0o755},
    {"name": f"{TOP}/model.pdmodel", "data": b"m" * 100},
    {"name": f"{TOP}/model.pdiparams", "data": b"p" * 100},
    {"name": f"{TOP}/infer_cfg.yml", "data": INFER_CFG.format(size=416).encode()},
]
HOSTILE = {
    "dotdot": {"name": f"{TOP}/../../escaped.txt", "data": b"pwned"},
    "dotdot-leading": {"name": "../escaped.txt", "data": b"pwned"},
    "absolute": {"name": "/tmp/picozoo-escaped-abs.txt", "data": b"pwned"},
    "symlink-escape": {"name": f"{TOP}/link", "type": tarfile.SYMTYPE, "linkname": "../../.."},
    "symlink-absolute": {"name": f"{TOP}/link", "type": tarfile.SYMTYPE, "linkname": "/etc"},
    "hardlink-escape": {"name": f"{TOP}/hl", "type": tarfile.LNKTYPE, "linkname": "../../x"},
    "hardlink-absolute": {"name": f"{TOP}/hl", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"},
    "device": {"name": f"{TOP}/null", "type": tarfile.CHRTYPE},
    "block-device": {"name": f"{TOP}/sda", "type": tarfile.BLKTYPE},
    "fifo": {"name": f"{TOP}/pipe", "type": tarfile.FIFOTYPE},
    "hardlink-to-dir": {"name": f"{TOP}/hl", "type": tarfile.LNKTYPE, "linkname": TOP},
    "file-then-child": {"name": f"{TOP}/model.pdmodel/child", "data": b"below a file"},
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tarball_refused_via_pull(case: str, tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    mirror, work, cache_dir = tmp_path / "mirror", tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    bad = make_tarball(work / art.filename, [*GOOD, HOSTILE[case]])
    publish(art, bad, mirror)
    before = tree_snapshot(tmp_path)
    with serve_directory(mirror) as srv, pytest.raises(UnsafeArchiveError) as ei:
        pull(art, cache_dir=cache_dir, mirrors=srv.url)
    assert HOSTILE[case]["name"] in str(ei.value)
    new = tree_snapshot(tmp_path) - before
    outside = {p for p in new if not p.startswith("cache")}
    assert outside == set(), outside
    files = [p for p in cache_dir.rglob("*") if p.is_file() and "locks" not in p.parts]
    assert files == [], files  # no blob, no ref, no unpacked tree, no temp dir left
    assert not list((cache_dir / "unpacked").iterdir())
    assert not Path("/tmp/picozoo-escaped-abs.txt").exists()
    assert store_at(cache_dir).lookup(art) is None


def test_symlink_through_symlink_refused(tmp_path: Path) -> None:
    # "a" -> "." is inside, but "a/../x" would then resolve above the root
    tar = make_tarball(
        tmp_path / "t.tar",
        [
            {"name": "d", "type": tarfile.DIRTYPE},
            {"name": "d/a", "type": tarfile.SYMTYPE, "linkname": "."},
            {"name": "d/b", "type": tarfile.SYMTYPE, "linkname": "a/../../.."},
        ],
    )
    with pytest.raises(UnsafeArchiveError):
        extract_tarball(tar, tmp_path / "out")
    tar2 = make_tarball(
        tmp_path / "t2.tar",
        [
            {"name": "d", "type": tarfile.DIRTYPE},
            {"name": "d/a", "type": tarfile.SYMTYPE, "linkname": "."},
            {"name": "d/a/x.txt", "data": b"through the link"},
        ],
    )
    with pytest.raises(UnsafeArchiveError, match="below the symlink"):
        extract_tarball(tar2, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_duplicate_member_refused(tmp_path: Path) -> None:
    tar = make_tarball(tmp_path / "t.tar", [*GOOD, {"name": f"{TOP}/model.pdmodel", "data": b"x"}])
    with pytest.raises(UnsafeArchiveError, match="twice"):
        extract_tarball(tar, tmp_path / "out")


def test_inside_links_are_fine_and_hardlinks_are_copied(tmp_path: Path) -> None:
    tar = make_tarball(
        tmp_path / "t.tar",
        [
            *GOOD,
            {"name": f"{TOP}/alias.yml", "type": tarfile.SYMTYPE, "linkname": "infer_cfg.yml"},
            {"name": f"{TOP}/copy.pdiparams", "type": tarfile.LNKTYPE,
             "linkname": f"{TOP}/model.pdiparams"},
            {"name": f"{TOP}/run.sh", "data": b"#!/bin/sh\n", "mode": 0o4755},
        ],
    )  # fmt: skip
    m = extract_tarball(tar, tmp_path / "out")
    root = tmp_path / "out" / m["root"]
    assert m["root"] == f"tree/{TOP}"
    assert (root / "alias.yml").is_symlink() and (root / "alias.yml").read_text().startswith("mode")
    assert (root / "copy.pdiparams").read_bytes() == b"p" * 100
    assert os.stat(root / "copy.pdiparams").st_ino != os.stat(root / "model.pdiparams").st_ino
    assert not os.stat(root / "run.sh").st_mode & 0o4000  # setuid dropped
    assert set(m["files"]) == {
        f"{TOP}/{n}"
        for n in ("model.pdmodel", "model.pdiparams", "infer_cfg.yml", "copy.pdiparams", "run.sh")
    }


def test_inference_tarball_must_have_expected_files(tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    mirror = tmp_path / "mirror"
    tar = make_tarball(tmp_path / art.filename, GOOD[:3])  # no infer_cfg.yml
    publish(art, tar, mirror)
    with serve_directory(mirror) as srv, pytest.raises(BadArchiveError, match=r"infer_cfg\.yml"):
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
    cache = tmp_path / "cache"
    assert not [p for p in cache.rglob("*") if p.is_file() and "locks" not in p.parts]


def test_pir_model_json_and_gzip_tarballs_are_accepted(tmp_path: Path) -> None:
    d = make_inference_dir(tmp_path / "src", pir=True)
    tar = make_inference_tarball(d, tmp_path / "picodet_x.tar.gz")
    m = extract_tarball(tar, tmp_path / "out")
    assert sorted(Path(f).name for f in m["files"]) == [
        "infer_cfg.yml",
        "model.json",
        "model.pdiparams",
    ]


def test_truncated_tarball_is_a_clear_error(tmp_path: Path) -> None:
    d = make_inference_dir(tmp_path / "src", nbytes=50_000)
    tar = make_inference_tarball(d, tmp_path / "x.tar")
    tar.write_bytes(tar.read_bytes()[:70_000])
    with pytest.raises(BadArchiveError):
        extract_tarball(tar, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# -- issue 9: size caps, structural refusals, disk errors, interrupted unpacks ------------------
def sparse_tar(dest: Path, name: str, realsize: int, data: bytes = b"x" * 10) -> Path:
    """A real GNU sparse tar: one member of ``realsize`` bytes (all hole but ``data`` at the
    end) in a 10 KB file. Python's tarfile reads it; it cannot write one."""
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode = tarfile.GNUTYPE_SPARSE, len(data), 0o644
    h = bytearray(ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    h[386:398] = tarfile.itn(realsize - len(data), 12, tarfile.GNU_FORMAT)  # sparse map entry
    h[398:410] = tarfile.itn(len(data), 12, tarfile.GNU_FORMAT)
    h[483:495] = tarfile.itn(realsize, 12, tarfile.GNU_FORMAT)  # the size it unpacks to
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    body = bytes(h) + data + b"\0" * (-len(data) % 512) + b"\0" * 1024
    dest.write_bytes(body + b"\0" * (-len(body) % 10240))
    return dest


def cli_main(*args: str) -> tuple[int, str, str]:
    """Run the real CLI entry point in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from picozoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            return int(e.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_sparse_tar_bomb_is_refused_from_its_headers_via_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    mirror, cache_dir = tmp_path / "mirror", tmp_path / "cache"
    bomb = sparse_tar(tmp_path / art.filename, f"{TOP}/model.pdiparams", 20 << 30)
    assert bomb.stat().st_size == 10240
    publish(art, bomb, mirror)
    monkeypatch.setenv("PICOZOO_CACHE", str(cache_dir))
    before = tree_snapshot(tmp_path)
    with serve_directory(mirror) as srv:
        code, out, err = cli_main("pull", MODEL, "--mirror", srv.url)
    assert code == 5, err
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "at least 21474836480 bytes, over the limit of 512000 bytes" in err
    assert "PICOZOO_MAX_UNPACK_RATIO=50 x the archive size of 10240 bytes" in err
    new = tree_snapshot(tmp_path) - before
    assert {p for p in new if not p.startswith("cache")} == set()
    written = [p for p in cache_dir.rglob("*") if p.is_file() and "locks" not in p.parts]
    assert written == [], written  # no blob, no .part, no staging folder, not one byte
    assert not list((cache_dir / "unpacked").iterdir())


@pytest.mark.slow
def test_gzip_bomb_is_refused_before_decompressing_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tf:
        for i in range(2):  # the second member is never reached: 16 MiB is already too much
            ti = tarfile.TarInfo(f"{TOP}/zeros{i}.bin")
            ti.size = 16 << 20
            tf.addfile(ti, _Zeros(ti.size))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ArchiveTooLargeError, match=r"at least 16777216 bytes.*RATIO=50"):
        extract_tarball(bomb, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tar.gz"]  # no staging left
    # within the cap (a generous ratio) the same archive unpacks
    m = extract_tarball(bomb, tmp_path / "ok", limits=UnpackLimits(max_ratio=10_000))
    assert m["files"][f"{TOP}/zeros1.bin"]["size"] == 16 << 20


@pytest.mark.slow
def test_absolute_cap_and_env_limits_reach_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    d = make_inference_dir(tmp_path / "src", nbytes=10_000)  # unpacks to ~50 KB
    publish(art, make_inference_tarball(d, tmp_path / art.filename), tmp_path / "mirror")
    monkeypatch.setenv("PICOZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PICOZOO_MAX_UNPACK_BYTES", "20000")
    url = (tmp_path / "mirror").as_uri()
    code, _, err = cli_main("pull", MODEL, "--mirror", url)
    assert code == 5 and "PICOZOO_MAX_UNPACK_BYTES=20000" in err, err
    assert not [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "locks" not in p.parts
    ]
    monkeypatch.setenv("PICOZOO_MAX_UNPACK_BYTES", "60000")
    code, out, err = cli_main("pull", MODEL, "--mirror", url)
    assert code == 0, err
    assert (Path(out.strip()) / "model.pdiparams").stat().st_size == 40_000


def test_bytes_written_are_counted_when_headers_undercount(tmp_path: Path) -> None:
    # hard links are copied, and a link spelled "./x" is not matched to "x" when headers are
    # added up: only counting the bytes really written catches this archive
    big = {"name": f"{TOP}/w.bin", "data": bytes(100_000)}
    links = [
        {"name": f"{TOP}/copy{i}", "type": tarfile.LNKTYPE, "linkname": f"./{TOP}/w.bin"}
        for i in range(6)
    ]
    tar = make_tarball(tmp_path / "t.tar", [big, *links])
    cap = UnpackLimits(max_ratio=3.0)  # ~3 x 110 KB: the headers say 100 KB, copies make 700
    with pytest.raises(ArchiveTooLargeError, match="counted while writing"):
        extract_tarball(tar, tmp_path / "out", limits=cap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tar"]
    m = extract_tarball(tar, tmp_path / "out", limits=UnpackLimits(max_ratio=7.0))
    assert len(m["files"]) == 7


@pytest.mark.slow
def test_structural_conflicts_are_refused_with_exit_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = {
        "child-then-file": [
            {"name": f"{TOP}/sub/x.txt", "data": b"x"},
            {"name": f"{TOP}/sub", "data": b"now a file"},
        ],
        "dir-then-symlink-over-it": [
            {"name": f"{TOP}/sub", "type": tarfile.DIRTYPE},
            {"name": f"{TOP}/sub/x.txt", "data": b"x"},
            {"name": f"{TOP}/sub", "type": tarfile.SYMTYPE, "linkname": "."},
        ],
        "hardlink-to-symlink": [
            {"name": f"{TOP}/s", "type": tarfile.SYMTYPE, "linkname": "infer_cfg.yml"},
            {"name": f"{TOP}/h", "type": tarfile.LNKTYPE, "linkname": f"{TOP}/s"},
        ],
        "hardlink-to-implied-dir": [{"name": f"{TOP}/h", "type": tarfile.LNKTYPE, "linkname": TOP}],
    }
    art = load_registry().get(MODEL).artifact("inference")
    monkeypatch.setenv("PICOZOO_CACHE", str(tmp_path / "cache"))
    for case, extra in cases.items():
        mirror = tmp_path / f"mirror-{case}"
        members = GOOD[1:] if case == "hardlink-to-implied-dir" else GOOD
        publish(art, make_tarball(tmp_path / f"{case}.tar", [*members, *extra]), mirror)
        code, _, err = cli_main("pull", MODEL, "--mirror", mirror.as_uri())
        assert code == 5, (case, err)
        assert err.startswith("picozoo: error: refusing to unpack") and err.count("\n") == 1, err
    assert not [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "locks" not in p.parts
    ]


def test_interrupted_unpack_leaves_only_a_staging_folder_that_prune_removes(
    tmp_path: Path,
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from support.store import store_at

    from picozoo.hub.maintenance import prune

    tar = make_inference_tarball(make_inference_dir(tmp_path / "src"), tmp_path / "x.tar")
    store = store_at(tmp_path / "cache")
    dest = store.unpacked_dir("ab" * 32)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from picozoo.hub.unpack import extract_tarball\n"
        "def stop(root):\n"
        "    print('staged', flush=True)\n"
        "    time.sleep(60)\n"
        "extract_tarball(Path(sys.argv[1]), Path(sys.argv[2]), check=stop)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tar), str(dest)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "staged"
        proc.send_signal(signal.SIGTERM)  # default action: die at once, no Python cleanup
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
    leftovers = list(dest.parent.iterdir())
    assert [p.name.startswith(f".tmp-{dest.name}-") for p in leftovers] == [True]
    assert not dest.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    assert prune(store) == []  # too young: it could be a running unpack
    old = time.time() - 2 * 3600
    os.utime(leftovers[0], (old, old))
    removed = prune(store)
    assert [r.path for r in removed] == leftovers and "interrupted unpack" in removed[0].reason
    assert list(dest.parent.iterdir()) == []


def _can_mount() -> bool:
    """True when tests may mount a tmpfs in a private mount namespace (root + unshare)."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = "mount -t tmpfs -o size=4k tmpfs /mnt 2>/dev/null"
    return subprocess.run(["unshare", "--mount", "sh", "-c", probe], check=False).returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root and unshare --mount")


def _pull_in_namespace(tmp_path: Path, setup: str) -> tuple[int, str, list[str]]:
    """``picozoo pull`` of a ~500 KB inference tarball from a file:// mirror, run after the
    shell ``setup`` in a private mount namespace (mounts vanish with it): (exit code, stderr,
    files left in the cache, listed inside the namespace)."""
    import subprocess
    import sys

    art = load_registry().get(MODEL).artifact("inference")
    d = make_inference_dir(tmp_path / "src", nbytes=100_000)
    publish(art, make_inference_tarball(d, tmp_path / art.filename), tmp_path / "mirror")
    cache = tmp_path / "cache"
    cache.mkdir()
    script = (
        f"set -e; cd {tmp_path}; {setup}; set +e; "
        f"PICOZOO_CACHE={cache} {sys.executable} -m picozoo pull {MODEL} "
        f"--mirror {(tmp_path / 'mirror').as_uri()} 2>err.txt; echo $? > rc.txt; "
        f"find {cache} -type f -o -type d -name '.tmp-*' > left.txt"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    subprocess.run(["unshare", "--mount", "sh", "-c", script], check=True, env=env)
    left = [ln for ln in (tmp_path / "left.txt").read_text().splitlines() if "/locks/" not in ln]
    rc = int((tmp_path / "rc.txt").read_text())
    return rc, (tmp_path / "err.txt").read_text(), left


@pytest.mark.slow
@needs_mount
def test_disk_full_while_unpacking_is_a_one_line_disk_error(tmp_path: Path) -> None:
    # room for the download (~500 KB) but not for its unpacked copy: ENOSPC while unpacking
    rc, err, left = _pull_in_namespace(tmp_path, "mount -t tmpfs -o size=768k tmpfs cache")
    assert rc == 12, err
    assert err.count("\n") == 1 and "no space left" in err.lower(), err
    assert "/cache/unpacked/" in err and ".tmp-" not in err  # names the place, not a temp
    assert _only_the_kept_download(left), left  # no staging folder, no blob, no ref


@pytest.mark.slow
@needs_mount
def test_read_only_unpacked_folder_is_a_one_line_disk_error(tmp_path: Path) -> None:
    setup = (
        "mkdir -p cache/unpacked && mount --bind cache/unpacked cache/unpacked && "
        "mount -o remount,bind,ro cache/unpacked"
    )
    rc, err, left = _pull_in_namespace(tmp_path, setup)
    assert rc == 12, err
    assert err.count("\n") == 1 and "Read-only file system" in err, err
    assert "/cache/unpacked/" in err and ".tmp-" not in err
    assert _only_the_kept_download(left), left


def _only_the_kept_download(left: list[str]) -> bool:
    """pull keeps the verified download (``downloads/*.part``) after a disk error so that the
    next pull only unpacks; nothing else may be left."""
    return [Path(p).parent.name for p in left] == ["downloads"] and left[0].endswith(".part")


def test_any_oserror_while_writing_is_a_disk_error_and_staging_is_removed(
    tmp_path: Path,
) -> None:
    # RLIMIT_FSIZE makes writes past 64 KB fail with EFBIG: a real OSError, no root needed
    import subprocess
    import sys

    tar = make_inference_tarball(
        make_inference_dir(tmp_path / "src", nbytes=50_000), tmp_path / "x.tar"
    )
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from picozoo.errors import DiskError\n"
        "from picozoo.hub.unpack import extract_tarball\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "try:\n"
        "    extract_tarball(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "except DiskError as e:\n"
        "    print(int(e.exit_code), e)\n"
    )
    out = tmp_path / "out" / "u"
    r = subprocess.run(
        [sys.executable, "-c", script, str(tar), str(out)], capture_output=True, text=True
    )
    assert r.stdout.startswith("12 cannot write to "), r.stdout + r.stderr
    assert f"{out}: File too large" in r.stdout  # names where it was unpacking to
    assert list(out.parent.iterdir()) == []  # the staging folder was removed


class _Zeros:
    """A file-like of ``n`` zero bytes (for building a compressed bomb without the memory)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)
