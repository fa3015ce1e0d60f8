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
from support.store import pull
from support.store import store_at as Cache

from picozoo.errors import BadArchiveError, UnsafeArchiveError
from picozoo.hub.registry import load_registry
from picozoo.hub.unpack import extract_tarball

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
}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICOZOO_BACKOFF", "0.01")
    monkeypatch.delenv("PICOZOO_MIRROR", raising=False)


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
    assert Cache(cache_dir).lookup(art) is None


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
