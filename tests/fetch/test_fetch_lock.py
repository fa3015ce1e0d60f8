"""Hash pins: the lock file, mismatches, --update-lock, --require-hashes, `picozoo lock`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.artifacts import (
    build_mirror,
    make_artifact_file,
    publish,
    sha256_file,
    write_registry,
)
from support.http_server import serve_directory
from support.store import pin_artifact, pull, store_at

from picozoo.errors import HashMismatchError, HashRequiredError
from picozoo.errors import PinsFileError as LockFileError
from picozoo.hub.pins import PinFile as Lock
from picozoo.hub.pins import PinnedHash
from picozoo.hub.registry import load_registry
from picozoo.settings import Settings

MODEL = "picodet-s-416"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )


def test_lock_api_roundtrip_and_merge(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "picozoo.lock"
    assert len(Lock.load(path)) == 0  # missing file = empty
    a, b = Lock.load(path), Lock.load(path)
    a.record("https://x/a.tar", "a" * 64, 1)
    a.save()
    b.record("picozoo-converted:m/k/model.onnx", "b" * 64, 2)  # any key works
    b.save()  # must not drop a's entry written meanwhile
    loaded = Lock.load(path)
    assert loaded.get("https://x/a.tar").sha256 == "a" * 64  # type: ignore[union-attr]
    assert loaded.get("picozoo-converted:m/k/model.onnx").size == 2  # type: ignore[union-attr]
    assert json.loads(path.read_text())["version"] == 1
    assert Settings(cache_dir=tmp_path).pins_path == tmp_path / "picozoo.lock"
    with pytest.raises(ValueError):
        a.record("u", "not-a-hash", 1)


def test_malformed_lock_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "picozoo.lock"
    path.write_text("{not json")
    with pytest.raises(LockFileError, match="is not JSON"):
        Lock.load(path)


GOOD = "ab" * 32


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"sha256": GOOD[:63], "size": 1}, "sha256 must be 64 hex digits"),
        ({"sha256": GOOD + "a", "size": 1}, "sha256 must be 64 hex digits"),
        ({"sha256": 12, "size": 1}, "sha256 must be 64 hex digits"),
        ({"sha256": "zz" * 32, "size": 1}, "sha256 must be 64 hex digits"),
        ({"sha256": GOOD, "size": -1}, "size must be a whole number >= 0"),
        ({"sha256": GOOD, "size": "3"}, "size must be a whole number >= 0"),
        ("just a string", "must be an object"),
    ],
)
def test_a_malformed_pin_is_an_error_naming_file_and_entry(
    tmp_path: Path, entry: object, problem: str
) -> None:
    path = tmp_path / "picozoo.lock"
    path.write_text(json.dumps({"version": 1, "artifacts": {"https://h/x.tar": entry}}))
    with pytest.raises(LockFileError, match=problem) as info:
        Lock.load(path)
    assert str(path) in info.value.message and "'https://h/x.tar'" in info.value.message
    assert info.value.exit_code == 3


def test_pins_file_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "picozoo.lock"
    path.write_text(json.dumps({"version": 2, "artifacts": {}}))
    with pytest.raises(LockFileError, match="unknown pins file version 2"):
        Lock.load(path)


def test_an_upper_case_pin_is_normalised_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "picozoo.lock"
    path.write_text(json.dumps({"artifacts": {"u": {"sha256": GOOD.upper(), "size": 5}}}))
    pin = Lock.load(path).get("u")
    assert pin is not None and pin.sha256 == GOOD and pin.size == 5


def test_changed_upstream_bytes_fail_with_both_hashes_and_leave_cache_alone(
    tmp_path: Path,
) -> None:
    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    mirror = tmp_path / "mirror"
    first = build_mirror(reg, mirror, tmp_path, [MODEL])[(MODEL, "inference")]
    old_sha = sha256_file(first)
    lock_path = tmp_path / "project" / "picozoo.lock"
    with serve_directory(mirror) as srv:
        pull(art, cache_dir=tmp_path / "c1", mirrors=srv.url, lock_path=lock_path)
        assert Lock.load(lock_path).get(art.url).sha256 == old_sha  # type: ignore[union-attr]
        # upstream silently replaces the file; a fresh cache (another machine) pulls it
        publish(art, make_artifact_file(art, tmp_path / "v2", seed=7), mirror)
        new_sha = sha256_file(first)
        assert new_sha != old_sha
        cache = store_at(tmp_path / "c2")
        with pytest.raises(HashMismatchError) as ei:
            pull(art, cache_dir=cache.root, mirrors=srv.url, lock_path=lock_path)
        msg = str(ei.value)
        assert MODEL in msg and "inference" in msg and old_sha in msg and new_sha in msg
        assert "--update-lock" in msg
        assert srv.stats.full_gets[art.url_path] == 2  # it really downloaded the new bytes
        files = [p for p in cache.root.rglob("*") if p.is_file() and "locks" not in p.parts]
        assert files == [], files  # no blob, no unpacked dir, no ref, no .part kept
        assert cache.lookup(art) is None
        assert Lock.load(lock_path).get(art.url).sha256 == old_sha  # type: ignore[union-attr]
        # accepting the change deliberately
        path = pull(
            art, cache_dir=cache.root, mirrors=srv.url, lock_path=lock_path, update_lock=True
        )
    assert Lock.load(lock_path).get(art.url).sha256 == new_sha  # type: ignore[union-attr]
    assert cache.lookup(art).sha256 == new_sha and path.is_dir()  # type: ignore[union-attr]


@pytest.mark.slow
def test_cli_mismatch_exit_code_and_one_line(tmp_path: Path) -> None:
    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    mirror = tmp_path / "mirror"
    build_mirror(reg, mirror, tmp_path, [MODEL])
    lock = tmp_path / "project.lock"
    lk = Lock.load(lock)
    lk.record(art.url, "0" * 64, 123)
    lk.save()
    with serve_directory(mirror) as srv:
        env = {"PICOZOO_CACHE": str(tmp_path / "cache"), "PICOZOO_MIRROR": srv.url}
        r = cli("pull", MODEL, "--lock", str(lock), env=env)
    assert r.returncode == 6
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "0" * 64 in lines[0] and "--update-lock" in lines[0]
    assert not (tmp_path / "cache" / "blobs" / "sha256").exists() or not list(
        (tmp_path / "cache" / "blobs" / "sha256").iterdir()
    )


@pytest.mark.slow
def test_registry_pin_is_enforced(tmp_path: Path) -> None:
    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    mirror = tmp_path / "mirror"
    published = build_mirror(reg, mirror, tmp_path, [MODEL])[(MODEL, "inference")]
    good = sha256_file(published)
    size = published.stat().st_size
    ok_reg = write_registry(
        tmp_path / "ok.yaml", [MODEL], {(MODEL, "inference"): {"sha256": good, "size": size}}
    )
    bad_reg = write_registry(
        tmp_path / "bad.yaml", [MODEL], {(MODEL, "inference"): {"sha256": "f" * 64}}
    )
    with serve_directory(mirror) as srv:
        bad_art = load_registry(bad_reg).get(MODEL).artifact("inference")
        with pytest.raises(HashMismatchError, match="the registry pins"):
            pull(bad_art, cache_dir=tmp_path / "c1", mirrors=srv.url, require_hashes=True)
        ok_art = load_registry(ok_reg).get(MODEL).artifact("inference")
        pull(ok_art, cache_dir=tmp_path / "c2", mirrors=srv.url, require_hashes=True)
    # registry pins are not copied into the lock file
    assert Lock.load((tmp_path / "c2") / "picozoo.lock").get(art.url) is None


def test_require_hashes_refuses_unpinned_before_any_request(tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    with serve_directory(tmp_path) as srv:
        with pytest.raises(HashRequiredError, match="picozoo lock picodet-s-416"):
            pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url, require_hashes=True)
        assert not srv.stats.requests


@pytest.mark.slow
def test_lock_command_pins_without_keeping_copies(tmp_path: Path) -> None:
    reg = load_registry()
    mirror = tmp_path / "mirror"
    files = build_mirror(reg, mirror, tmp_path, [MODEL, "picodet-m-416"], ("inference", "onnx"))
    cache = tmp_path / "cache"
    project_lock = tmp_path / "proj" / "zoo.lock"
    with serve_directory(mirror) as srv:
        env = {"PICOZOO_CACHE": str(cache), "PICOZOO_MIRROR": srv.url, "PICOZOO_BACKOFF": "0"}
        srv.drop_after(reg.get(MODEL).artifact("onnx").url_path, 1000, times=2)
        r = cli(
            "lock", MODEL, "picodet-m-416", "-a", "inference", "-a", "onnx",
            "--lock", str(project_lock), "--format", "json", env=env,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        assert {(x["model"], x["kind"]) for x in rows} == set(files)
        assert all(x["from"] == "download" for x in rows)
        lock = Lock.load(project_lock)
        for (mid, kind), f in files.items():
            e = lock.get(reg.get(mid).artifact(kind).url)
            assert e is not None and e.sha256 == sha256_file(f) and e.size == f.stat().st_size
        assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
        # with the pins in place, --require-hashes pulls work and are checked
        r = cli("pull", MODEL, "--lock", str(project_lock), "--require-hashes", env=env)
        assert r.returncode == 0, r.stderr
        assert Path(r.stdout.strip()).is_dir()
        # a second lock run is a no-op
        r = cli("lock", MODEL, "--lock", str(project_lock), "--format", "json", env=env)
        assert json.loads(r.stdout)[0]["from"] == "already pinned"


@pytest.mark.slow
def test_concurrent_processes_recording_pins_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "picozoo.lock"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from picozoo.hub.pins import PinFile as Lock\n"
        "for j in range(5):\n"
        "    lk = Lock.load(Path(sys.argv[1]))\n"
        "    lk.record(f'https://x/{sys.argv[2]}-{j}.tar', sys.argv[2] * 64, j)\n"
        "    lk.save()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), c]) for c in "abcdef"]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6
    lock = Lock.load(path)
    assert len(lock) == 30
    assert lock.get("https://x/c-3.tar").sha256 == "c" * 64  # type: ignore[union-attr]


# -- a pin is only ever replaced by --update-lock / --update -----------------------------------
@pytest.fixture
def published(tmp_path: Path):
    """(inference artifact of MODEL, mirror dir, its published tarball)."""
    reg = load_registry()
    files = build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL])
    return reg.get(MODEL).artifact("inference"), tmp_path / "mirror", files[(MODEL, "inference")]


@pytest.mark.slow
def test_a_download_not_matching_the_pin_never_replaces_it(published, tmp_path: Path) -> None:
    art, mirror, tarball = published
    lock = tmp_path / "project.lock"
    lk = Lock.load(lock)
    lk.record(art.url, "0" * 64, 123)
    lk.save()
    pinned = lock.read_bytes()
    with serve_directory(mirror) as srv:
        env = {"PICOZOO_CACHE": str(tmp_path / "cache"), "PICOZOO_MIRROR": srv.url}
        r = cli("pull", MODEL, "--lock", str(lock), env=env)
        assert r.returncode == 6, r.stderr
        assert lock.read_bytes() == pinned
        kw = {"cache_dir": tmp_path / "cache", "mirrors": srv.url, "lock_path": lock}
        assert pin_artifact(art, **kw).how == "already pinned"  # `picozoo lock`
        assert lock.read_bytes() == pinned
        # the registry pins the real file: the disagreeing pins file is reported, not rewritten
        good = {"sha256": sha256_file(tarball), "size": tarball.stat().st_size}
        reg_path = write_registry(tmp_path / "reg.yaml", [MODEL], {(MODEL, "inference"): good})
        reg_art = load_registry(reg_path).get(MODEL).artifact("inference")
        with pytest.raises(HashMismatchError, match="0" * 64) as ei:
            pin_artifact(reg_art, **kw)
        assert ei.value.exit_code == 6 and lock.read_bytes() == pinned
        assert pin_artifact(reg_art, update=True, **kw).changed  # `picozoo lock --update`
    assert Lock.load(lock).get(art.url) == PinnedHash(good["sha256"], good["size"])


def test_a_pin_recorded_meanwhile_by_another_process_is_not_replaced(
    published, tmp_path: Path
) -> None:
    art, mirror, _ = published
    lock = tmp_path / "picozoo.lock"
    other = "e" * 64

    def other_process_pins(label: str, done: int, total: int | None) -> None:
        if done == total and Lock.load(lock).get(art.url) is None:
            lk = Lock.load(lock)
            lk.record(art.url, other, 99)
            lk.save()

    with serve_directory(mirror) as srv, pytest.raises(HashMismatchError) as ei:
        pull(
            art, cache_dir=tmp_path / "cache", mirrors=srv.url, lock_path=lock,
            progress=other_process_pins,
        )  # fmt: skip
    assert other in str(ei.value) and ei.value.exit_code == 6
    assert Lock.load(lock).get(art.url) == PinnedHash(other, 99)
    assert store_at(tmp_path / "cache").lookup(art) is None


@pytest.mark.slow
def test_require_hashes_with_a_malformed_pins_file_names_file_and_entry(tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    lock = tmp_path / "bad.lock"
    lock.write_text(json.dumps({"version": 1, "artifacts": {art.url: {"sha256": "abc"}}}))
    with serve_directory(tmp_path) as srv:
        env = {"PICOZOO_CACHE": str(tmp_path / "cache"), "PICOZOO_MIRROR": srv.url}
        r = cli("pull", MODEL, "--require-hashes", "--lock", str(lock), env=env)
        assert not srv.stats.requests
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(lock) in lines[0] and repr(art.url) in lines[0], lines
    assert "sha256 must be 64 hex digits" in lines[0]
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))
