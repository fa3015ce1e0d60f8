"""pull/cache CLI via the real entry point: stdout is data, exit codes, cache ls/rm/prune."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.artifacts import build_mirror, sha256_file
from support.http_server import serve_directory
from support.store import store_at

from picozoo.hub.maintenance import prune
from picozoo.hub.pins import PinFile as Lock
from picozoo.hub.registry import load_registry

MODEL = "picodet-xs-320"


def both(url: str) -> str:
    """The mirror at ``url`` for the artifact host and for GitHub (configs) alike."""
    return f"{url},github.com={url}"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**base, "PICOZOO_BACKOFF": "0.01", **env},
        check=False,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("zoo")
    reg = load_registry()
    files = build_mirror(reg, root / "mirror", root, [MODEL, "picodet-s-416"], ("all",))
    with serve_directory(root / "mirror") as srv:
        yield srv, files


@pytest.mark.slow
def test_pull_prints_one_usable_path_per_line(served, tmp_path: Path) -> None:
    srv, _ = served
    env = {"PICOZOO_CACHE": str(tmp_path / "c"), "PICOZOO_MIRROR": both(srv.url)}
    r = cli("pull", MODEL, "picodet-s-416", "-a", "inference", "-a", "onnx", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4
    assert (Path(lines[0]) / "infer_cfg.yml").is_file()  # cd "$(picozoo pull MODEL)" works
    assert (
        lines[1].endswith("/picodet_xs_320_lcnet_postprocessed.onnx") and Path(lines[1]).is_file()
    )
    assert "\x1b[" not in r.stderr  # no progress bars when stderr is not a terminal
    # the shell idiom from the issue
    sh = subprocess.run(
        ["sh", "-c", f'cd "$({sys.executable} -m picozoo pull {MODEL})" && ls'],
        capture_output=True, text=True, env={**os.environ, **env}, check=True,
    )  # fmt: skip
    assert sh.stdout.split() == ["infer_cfg.yml", "model.pdiparams", "model.pdmodel"]


@pytest.mark.slow
def test_pull_all_and_json(served, tmp_path: Path) -> None:
    srv, _files = served
    env = {"PICOZOO_CACHE": str(tmp_path / "c"), "PICOZOO_MIRROR": both(srv.url)}
    r = cli("pull", MODEL, "--artifact", "all", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    kinds = load_registry().get(MODEL).kinds
    assert [x["kind"] for x in rows] == kinds
    assert all(x["verified"] and Path(x["path"]).exists() for x in rows)
    config = next(x for x in rows if x["kind"] == "config")
    assert Path(config["path"]).name == "picodet_xs_320_coco_lcnet.yml"
    lite = next(x for x in rows if x["kind"] == "lite-fp32")
    assert (Path(lite["path"]) / "model.nb").is_file()
    lock = Lock.load((tmp_path / "c") / "picozoo.lock")
    assert len(lock) == len(kinds)


@pytest.mark.slow
def test_pull_all_goes_on_after_a_404_and_sums_up(tmp_path: Path) -> None:
    """One missing file (the log, second of nine) must not stop the seven artifacts after it;
    the summary names what was fetched and what failed, and the exit code says a download
    failed (4)."""
    reg = load_registry()
    kinds = reg.get(MODEL).kinds
    files = build_mirror(reg, tmp_path / "m", tmp_path, [MODEL], ("all",))
    files[(MODEL, "log")].unlink()  # upstream lost the log: a real 404
    assert kinds.index("log") < len(kinds) - 1
    log = reg.get(MODEL).artifact("log")
    cache = store_at(tmp_path / "c")
    with serve_directory(tmp_path / "m") as srv:
        env = {"PICOZOO_CACHE": str(cache.root), "PICOZOO_MIRROR": both(srv.url)}
        r = cli("pull", MODEL, "-a", "all", env=env)
        assert (log.url_path, 404) in srv.stats.statuses
    assert r.returncode == 4, r.stderr
    paths = r.stdout.splitlines()
    assert len(paths) == len(kinds) - 1 and all(Path(p).exists() for p in paths)
    assert sorted(e.kind for e in cache.entries()) == sorted(k for k in kinds if k != "log")
    err = r.stderr.strip().splitlines()
    assert any(line.startswith(f"{MODEL} log: error:") and "404" in line for line in err)
    assert f"fetched {len(kinds) - 1} of {len(kinds)} artifacts; failed: {MODEL} log" in err
    assert err[-1].startswith(f"picozoo: error: 1 of {len(kinds)} artifacts failed: {MODEL} log")
    assert cache.lookup(log) is None and not cache.part_path(log.url).exists()

    # the same in JSON, for scripts; the fetched ones now come from the cache
    with serve_directory(tmp_path / "m") as srv:
        env = {"PICOZOO_CACHE": str(cache.root), "PICOZOO_MIRROR": both(srv.url)}
        j = cli("pull", MODEL, "-a", "all", "--format", "json", env=env)
    assert j.returncode == 4, j.stderr
    rows = json.loads(j.stdout)
    assert sorted(x["kind"] for x in rows) == sorted(kinds)
    (failed,) = [x for x in rows if x["status"] == "failed"]
    assert failed["kind"] == "log" and failed["exit_code"] == 4 and "404" in failed["error"]
    assert all(x["status"] == "fetched" and x["verified"] for x in rows if x is not failed)


def test_pull_summary_exit_code_says_what_failed() -> None:
    from picozoo.errors import DownloadError, HashMismatchError, OfflineError
    from picozoo.hub.pull_many import PullFailure, PullSummary

    arts = load_registry().get(MODEL).artifacts
    only = HashMismatchError("sha256 mismatch")
    alone = PullSummary(failed=[PullFailure(arts[0], only)])
    assert alone.error() is only  # one artifact asked for: its own error, as before
    for errors, code in [
        ([HashMismatchError("a"), DownloadError("b")], 4),
        ([HashMismatchError("a"), HashMismatchError("b")], 6),
        ([HashMismatchError("a"), OfflineError("b")], 1),
    ]:
        summary = PullSummary(
            failed=[PullFailure(a, e) for a, e in zip(arts[:2], errors, strict=True)]
        )
        err = summary.error()
        assert err is not None and err.exit_code == code, errors
        assert str(err).startswith(f"2 of 2 artifacts failed: {MODEL} weights, {MODEL} log")
    assert PullSummary().error() is None


@pytest.mark.slow
def test_verify_deep_without_onnx_names_the_extra(served, tmp_path: Path) -> None:
    """A missing optional package is not an integrity failure: exit 11 and the extra to
    install, not `FAILED ... onnx is not installed` with exit 6 and advice to re-download."""
    srv, _ = served
    env = {"PICOZOO_CACHE": str(tmp_path / "c"), "PICOZOO_MIRROR": both(srv.url)}
    assert cli("pull", MODEL, "-a", "onnx", env=env).returncode == 0
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "onnx.py").write_text(
        "raise ImportError(\"No module named 'onnx' (test stand-in)\", name='onnx')\n"
    )
    no_onnx = {
        **env,
        "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
    }
    r = cli("verify", MODEL, "--deep", env=no_onnx)
    assert r.returncode == 11, r.stdout + r.stderr
    assert "needs the [convert] extra: pip install 'picozoo[convert]'" in r.stderr
    assert "FAILED" not in r.stdout and "re-download" not in r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # control: with onnx, the checker runs and rejects the stand-in's random bytes (exit 6)
    pytest.importorskip("onnx")
    r = cli("verify", MODEL, "--deep", env=env)
    assert r.returncode == 6 and "FAILED" in r.stdout and "onnx.checker" in r.stdout


@pytest.mark.slow
def test_pull_errors_are_one_line_with_exit_codes(served, tmp_path: Path) -> None:
    srv, _ = served
    env = {"PICOZOO_CACHE": str(tmp_path / "c"), "PICOZOO_MIRROR": both(srv.url)}
    for args, code, text in [
        (("pull", "picodet-s-41"), 2, "did you mean"),
        (("pull", "picodet-s-416", "-a", "lite-int8"), 2, "has no 'lite-int8' artifact"),
        (("pull", "esnet-m"), 2, "unknown model"),
        (("pull", MODEL, "--require-hashes"), 6, "no pinned sha256"),
    ]:
        r = cli(*args, env=env)
        assert r.returncode == code, (args, r.stderr)
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
        assert text in r.stderr
    assert not (tmp_path / "c" / "blobs").exists()


@pytest.mark.slow
def test_cache_ls_rm_and_prune(served, tmp_path: Path) -> None:
    srv, _ = served
    cache_dir = tmp_path / "c"
    env = {"PICOZOO_CACHE": str(cache_dir), "PICOZOO_MIRROR": both(srv.url)}
    assert (
        cli("pull", MODEL, "picodet-s-416", "-a", "inference", "-a", "weights", env=env).returncode
        == 0
    )
    r = cli("cache", "ls", "--format", "json", env=env)
    rows = json.loads(r.stdout)
    assert sorted((x["model"], x["kind"]) for x in rows) == [
        ("picodet-s-416", "inference"), ("picodet-s-416", "weights"),
        (MODEL, "inference"), (MODEL, "weights"),
    ]  # fmt: skip
    assert all(x["verified"] and x["size"] > 0 and x["last_used"] for x in rows)
    csv = cli("cache", "ls", "--format", "csv", env=env).stdout.splitlines()
    assert csv[0] == "model,kind,size,last_used,verified,path" and len(csv) == 5

    r = cli("cache", "rm", MODEL, env=env)
    assert r.returncode == 0, r.stderr
    left = json.loads(cli("cache", "ls", "--format", "json", env=env).stdout)
    assert {x["model"] for x in left} == {"picodet-s-416"}
    blobs = {p.name for p in (cache_dir / "blobs" / "sha256").iterdir()}
    assert blobs == {x["sha256"] for x in left}  # the removed model's files are gone
    assert len(Lock.load((cache_dir) / "picozoo.lock")) == 4  # pins are kept

    assert cli("cache", "rm", env=env).returncode == 2  # neither MODEL nor --all
    r = cli("cache", "rm", "--all", env=env)
    assert r.returncode == 0
    assert json.loads(cli("cache", "ls", "--format", "json", env=env).stdout) == []
    assert not list((cache_dir / "blobs" / "sha256").iterdir())
    assert not list((cache_dir / "unpacked").iterdir())


@pytest.mark.slow
def test_prune_removes_stale_parts_and_unreferenced_files(served, tmp_path: Path) -> None:
    srv, _ = served
    reg = load_registry()
    cache = store_at(tmp_path / "c")
    env = {"PICOZOO_CACHE": str(cache.root), "PICOZOO_MIRROR": both(srv.url)}
    assert cli("pull", MODEL, env=env).returncode == 0
    (entry,) = cache.entries()
    # debris: an old and a fresh partial download, an orphan blob, an orphan unpacked dir,
    # a leftover temp dir of a crashed unpack
    old = time.time() - 3 * 86400
    stale = cache.part_path(reg.get(MODEL).artifact("onnx").url)
    fresh = cache.part_path(reg.get(MODEL).artifact("weights").url)
    for p in (stale, fresh):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 100)
    orphan_blob = cache.blob_path("e" * 64)
    orphan_blob.write_bytes(b"orphan")
    orphan_dir = cache.unpacked_root / ("d" * 16)
    (orphan_dir / "tree").mkdir(parents=True)
    tmpdir = cache.unpacked_root / ".tmp-deadbeef-123"
    tmpdir.mkdir()
    for p in (stale, orphan_blob, orphan_dir, tmpdir):
        os.utime(p, (old, old))
    dry = prune(cache, dry_run=True)
    assert {r.path for r in dry} == {stale, orphan_blob, orphan_dir, tmpdir}
    assert stale.exists()
    r = cli("cache", "prune", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    assert {Path(x["path"]) for x in json.loads(r.stdout)} == {
        stale,
        orphan_blob,
        orphan_dir,
        tmpdir,
    }
    assert not stale.exists() and fresh.exists() and not orphan_blob.exists()
    assert entry.blob.exists() and entry.path.is_dir()  # referenced content is kept
    r = cli("verify", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_verified_blobs_are_never_rewritten(served, tmp_path: Path) -> None:
    srv, _ = served
    from support.store import pull

    art = load_registry().get(MODEL).artifact("weights")
    cache = store_at(tmp_path / "c")
    pull(art, cache_dir=cache.root, mirrors=srv.url)
    entry = cache.lookup(art)
    assert entry is not None
    st = entry.blob.stat()
    assert not st.st_mode & 0o222  # read-only
    pull(art, cache_dir=cache.root, mirrors=srv.url, update_lock=True)  # same bytes again
    st2 = entry.blob.stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


@pytest.mark.slow
def test_ctrl_c_in_a_real_process_leaves_a_resumable_part(tmp_path: Path) -> None:
    import signal

    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    published = build_mirror(reg, tmp_path / "m", tmp_path, [MODEL], nbytes=400_000)[
        (MODEL, "inference")
    ]
    cache = store_at(tmp_path / "c")
    part = cache.part_path(art.url)
    with serve_directory(tmp_path / "m") as srv:
        # the body pauses after 300 KB until released: Ctrl-C lands mid-download, however
        # loaded the machine (and the low-speed check cannot end the pause first)
        srv.hold_after(art.url_path, 300_000)
        env = {"PICOZOO_CACHE": str(cache.root), "PICOZOO_MIRROR": both(srv.url)}
        base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "picozoo", "pull", MODEL],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**base, **env, "PICOZOO_MIN_SPEED": "0"},
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not part.exists() or part.stat().st_size < 300_000:
            assert time.monotonic() < deadline and proc.poll() is None, "no 300 KB in 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        srv.release()
        assert proc.returncode == 130 and out == ""
        assert "interrupted (partial downloads are kept and resumed" in err
        assert "Traceback" not in err
        kept = part.stat().st_size
        assert 300_000 <= kept < published.stat().st_size
        assert cache.lookup(art) is None
        srv.rate = None
        r = cli("pull", MODEL, env=env)
        assert r.returncode == 0, r.stderr
        assert srv.stats.range_gets[art.url_path] == 1
        assert srv.total_bytes(art.url_path) < 1.5 * published.stat().st_size
    assert cache.lookup(art).sha256 == sha256_file(published)  # type: ignore[union-attr]


@pytest.mark.slow
def test_progress_goes_to_a_terminal_stderr_only(tmp_path: Path) -> None:
    import pty

    reg = load_registry()
    build_mirror(reg, tmp_path / "m", tmp_path, [MODEL], nbytes=300_000)
    with serve_directory(tmp_path / "m") as srv:
        srv.rate = 2_000_000
        master, slave = pty.openpty()  # stderr is a terminal, stdout a pipe
        base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
        env = {**base, "PICOZOO_CACHE": str(tmp_path / "c"), "PICOZOO_MIRROR": srv.url,
               "COLUMNS": "120", "TERM": "xterm"}  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "picozoo", "pull", MODEL],
            stdout=subprocess.PIPE, stderr=slave, env=env, text=True,
        )  # fmt: skip
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=60)
        os.close(master)
    tty_err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "picodet-s-416 inference" not in out and out.count("\n") == 1
    assert "picodet-xs-320 inference" in tty_err  # the rich progress bar's label
    assert Path(out.strip()).is_dir()


def _fake_conversion(store_root: Path, label: str) -> Path:
    """A converted output laid out as picozoo.convert writes it (model + provenance.json)."""
    d = store_root / "converted" / label / "0123456789abcdef"
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(b"onnx bytes")
    prov = {
        "target": "onnx",
        "created": "2026-11-27T20:00:00+00:00",
        "output": {"file": "model.onnx", "sha256": "ab" * 32, "size": 10},
        "parity": {"passed": True, "outputs": [{"max_abs": 1e-6}]},
        "source": {"kind": "inference-nopp"},
    }
    (d / "provenance.json").write_text(json.dumps(prov))
    return d


@pytest.mark.slow
def test_cache_maintenance_sees_converted_models_and_staging_folders(tmp_path: Path) -> None:
    root = tmp_path / "c"
    env = {"PICOZOO_CACHE": str(root)}
    converted = _fake_conversion(root, MODEL)
    staging = root / "converted" / MODEL / ".tmp-crashed"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"half")
    fresh = root / "unpacked" / ".tmp-running"
    fresh.mkdir(parents=True)
    two_hours_ago = time.time() - 7200
    os.utime(staging, (two_hours_ago, two_hours_ago))
    rows = json.loads(cli("cache", "ls", "--format", "json", env=env).stdout)
    assert [(r["model"], r["kind"], r["path"]) for r in rows] == [
        (MODEL, "converted:onnx", str(converted / "model.onnx"))
    ]
    r = cli("cache", "prune", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    assert [p["path"] for p in json.loads(r.stdout)] == [str(staging)]
    assert not staging.exists() and fresh.exists() and converted.exists()
    r = cli("cache", "rm", MODEL, env=env)
    assert r.returncode == 0 and not converted.exists()


@pytest.mark.slow
def test_cache_rm_all_keeps_a_download_in_progress(tmp_path: Path) -> None:
    from picozoo.hub.mutex import mutex

    store = store_at(tmp_path / "c")
    url = load_registry().get(MODEL).artifact("inference").url
    part = store.part_path(url)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)
    with mutex(store.mutex_path(url)):  # as a running pull holds it
        r = cli("cache", "rm", "--all", env={"PICOZOO_CACHE": str(store.root)})
    assert r.returncode == 0 and part.exists()
    assert "skipped: download in progress" in r.stderr
    r = cli("cache", "rm", "--all", env={"PICOZOO_CACHE": str(store.root)})
    assert r.returncode == 0 and not part.exists()
