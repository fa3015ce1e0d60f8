"""Hostile and broken servers, on a real loopback server: error pages and compressed bodies,
changing sizes on resume, slow drips, unreachable hosts and redirects.

Each test ends with the behaviour the issue asks for and checks that nothing was cached or
pinned (and nothing written outside the cache) when a download is refused.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.artifacts import build_mirror, make_artifact_file, sha256_file, tree_snapshot
from support.http_server import serve_directory
from support.store import pin_artifact, pull, store_at

from picozoo.errors import DownloadError, WrongContentError
from picozoo.hub.pins import PinFile
from picozoo.hub.registry import load_registry

MODEL = "picodet-s-416"
HTML = b"<!DOCTYPE html>\n<html><head><title>Service unavailable</title></head></html>\n"


@pytest.fixture
def speed_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempts slower than 1000 bytes/s for 0.5 s fail."""
    monkeypatch.setenv("PICOZOO_MIN_SPEED", "1000")
    monkeypatch.setenv("PICOZOO_MIN_SPEED_TIME", "0.5")


@pytest.fixture
def zoo(tmp_path: Path):
    """(registry, mirror dir, {(model, kind): published file}) for a few kinds of MODEL."""
    reg = load_registry()
    kinds = ("inference", "onnx", "weights", "config", "log")
    files = build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL], kinds, nbytes=100_000)
    return reg, tmp_path / "mirror", files


def picozoo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess with extra environment variables."""
    run_env = {**os.environ, "PICOZOO_BACKOFF": "0.01", **env}
    cmd = [sys.executable, "-m", "picozoo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=run_env, check=False)


def interrupt_after(nbytes: int) -> Callable[[str, int, int | None], None]:
    """A progress callback that presses Ctrl-C once ``nbytes`` came."""

    def progress(label: str, done: int, total: int | None) -> None:
        if done > nbytes:
            raise KeyboardInterrupt

    return progress


def assert_nothing_kept(cache_root: Path) -> None:
    """No blob, ref, unpacked dir, pin or partial download (lock files aside)."""
    files = [p for p in cache_root.rglob("*") if p.is_file() and "locks" not in p.parts]
    assert files == [], files


# -- error pages and compressed bodies ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["onnx", "weights", "inference", "config", "log"])
def test_an_html_page_answered_with_200_is_refused_and_never_pinned(
    zoo, tmp_path: Path, kind: str
) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact(kind)
    cache = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        srv.reply_next(art.url_path, HTML)
        mirrors = [srv.url, f"github.com={srv.url}"]  # the configs' GitHub files too
        with pytest.raises(WrongContentError) as ei:
            pull(art, cache_dir=cache.root, mirrors=mirrors)
        assert ei.value.exit_code == 5
        assert "text/html" in str(ei.value) and "an HTML page" in str(ei.value)
        assert_nothing_kept(cache.root)
        # the page was not pinned: the genuine file is accepted (and pinned) afterwards
        entry = pull(art, cache_dir=cache.root, mirrors=mirrors)
    assert sha256_file(files[(MODEL, kind)]) == cache.lookup(art).sha256  # type: ignore[union-attr]
    assert entry.exists()


@pytest.mark.slow
def test_cli_html_page_exit_5_one_line_nothing_outside_the_cache(zoo, tmp_path: Path) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("onnx")
    before = tree_snapshot(tmp_path)
    with serve_directory(mirror) as srv:
        srv.reply_next(art.url_path, HTML)
        r = picozoo(
            "pull", MODEL, "-a", "onnx", PICOZOO_CACHE=str(tmp_path / "cache"),
            PICOZOO_MIRROR=srv.url,
        )  # fmt: skip
    assert r.returncode == 5, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Content-Type: text/html" in lines[0], lines
    assert "ONNX" in lines[0]
    assert_nothing_kept(tmp_path / "cache")
    assert {p for p in tree_snapshot(tmp_path) - before if not p.startswith("cache")} == set()


def test_a_good_mirror_after_an_error_page_mirror_is_used(zoo, tmp_path: Path) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("weights")
    with serve_directory(mirror) as bad, serve_directory(mirror) as good:
        bad.reply_next(
            art.url_path, b'{"error": "quota exceeded"}', content_type="application/json"
        )
        pull(art, cache_dir=tmp_path / "cache", mirrors=[bad.url, good.url])
        assert good.stats.full_gets[art.url_path] == 1
    pin = PinFile.load(tmp_path / "cache" / "picozoo.lock").get(art.url)
    assert pin is not None and pin.sha256 == sha256_file(files[(MODEL, "weights")])


def test_lock_command_refuses_an_error_page_too(zoo, tmp_path: Path) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("onnx")
    with serve_directory(mirror) as srv:
        srv.reply_next(art.url_path, HTML)
        with pytest.raises(WrongContentError):
            pin_artifact(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
    assert not (tmp_path / "cache" / "picozoo.lock").exists()


def test_gzip_encoded_body_is_decoded_and_the_real_bytes_are_pinned(zoo, tmp_path: Path) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("inference")
    published = files[(MODEL, "inference")]
    with serve_directory(mirror) as srv:
        srv.gzip_next(art.url_path, times=5)
        path = pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        assert srv.total_bytes(art.url_path) < published.stat().st_size  # it was compressed
    entry = store_at(tmp_path / "cache").lookup(art)
    assert entry is not None and entry.sha256 == sha256_file(published)
    assert entry.size == published.stat().st_size and (path / "infer_cfg.yml").is_file()
    pin = PinFile.load(tmp_path / "cache" / "picozoo.lock").get(art.url)
    assert pin is not None and pin.sha256 == sha256_file(published)


def test_a_compressed_reply_to_a_resume_restarts_the_file(zoo, tmp_path: Path) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("inference")
    cache = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        with pytest.raises(KeyboardInterrupt):  # leaves a resumable .part
            pull(art, cache_dir=cache.root, mirrors=srv.url, progress=interrupt_after(100_000))
        srv.gzip_next(art.url_path, times=1)  # the Range request gets a gzip body
        pull(art, cache_dir=cache.root, mirrors=srv.url)
        assert srv.stats.range_gets[art.url_path] == 1 and srv.stats.full_gets[art.url_path] == 2
    assert cache.lookup(art).sha256 == sha256_file(files[(MODEL, "inference")])  # type: ignore[union-attr]


# -- sizes that change or lie -------------------------------------------------------------------
@pytest.mark.slow
def test_a_changed_content_range_total_restarts_instead_of_splicing(zoo, tmp_path: Path) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("inference")
    published = files[(MODEL, "inference")]
    bigger = make_artifact_file(art, tmp_path / "v2", seed=9, nbytes=250_000)
    assert bigger.stat().st_size > 1.5 * published.stat().st_size
    with serve_directory(mirror) as srv:
        srv.drop_after(art.url_path, 200_000, times=1)
        srv.serve_ranges_from(art.url_path, bigger)  # same ETag, other (larger) bytes
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        assert srv.stats.full_gets[art.url_path] == 2  # restarted from zero
    entry = store_at(tmp_path / "cache").lookup(art)
    assert entry is not None and entry.size == published.stat().st_size
    assert entry.sha256 == sha256_file(published)


def test_a_content_length_shorter_than_the_range_fails_the_attempt(
    zoo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("inference")
    caplog.set_level(logging.INFO, logger="picozoo")
    with serve_directory(mirror) as srv:
        srv.drop_after(art.url_path, 200_000, times=1)
        srv.short_length_next(art.url_path, 1000, times=1)
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        assert srv.stats.range_gets[art.url_path] == 2
    assert any("disagrees with Content-Range" in r.getMessage() for r in caplog.records)
    entry = store_at(tmp_path / "cache").lookup(art)
    assert entry is not None and entry.sha256 == sha256_file(files[(MODEL, "inference")])


# -- slow servers ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_slow_drip_fails_each_attempt_and_retries_are_bounded(
    zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speed_floor: None
) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("inference")
    monkeypatch.setenv("PICOZOO_TIMEOUT", "5")  # each byte comes well within the read timeout
    monkeypatch.setenv("PICOZOO_RETRIES", "1")
    cache = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        srv.drip_next(art.url_path, rate=20, seconds=3, times=5)
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match="slower than 1000 bytes/s") as ei:
            pull(art, cache_dir=cache.root, mirrors=srv.url)
        elapsed = time.monotonic() - t0
        assert srv.stats.requests[art.url_path] == 2  # one retry, then it gave up
    assert elapsed < 2.5, elapsed
    assert "gave up after 2 attempts" in str(ei.value)
    assert cache.lookup(art) is None and not PinFile.load(cache.settings.pins_path).entries


@pytest.mark.slow
def test_a_drip_then_a_good_reply_completes(zoo, tmp_path: Path, speed_floor: None) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("inference")
    with serve_directory(mirror) as srv:
        srv.drip_next(art.url_path, rate=20, seconds=3, times=1)
        t0 = time.monotonic()
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        took = time.monotonic() - t0
        assert srv.stats.range_gets[art.url_path] == 1  # the dripped bytes were kept
    assert took < 2.5, took
    assert store_at(tmp_path / "cache").lookup(art).sha256 == sha256_file(  # type: ignore[union-attr]
        files[(MODEL, "inference")]
    )


@pytest.mark.slow
def test_dripped_response_headers_hit_a_deadline(
    zoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("inference")
    monkeypatch.setenv("PICOZOO_TIMEOUT", "0.5")  # headers must come within 0.5 + 0.5 s
    with serve_directory(mirror) as srv:
        srv.drip_headers_next(art.url_path, rate=20, seconds=4, times=1)
        t0 = time.monotonic()
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        assert time.monotonic() - t0 < 3.0  # not the 4 s the server would drip
        assert srv.stats.requests[art.url_path] == 2


# -- unreachable hosts ------------------------------------------------------------------------
def _refused_url() -> str:
    """A loopback URL on which nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _unresolvable() -> str:
    name = "picozoo-test.invalid"  # RFC 6761: never resolves
    t0 = time.monotonic()
    try:
        socket.getaddrinfo(name, 80)
    except socket.gaierror:
        if time.monotonic() - t0 < 1.0:
            return f"http://{name}"
    pytest.skip("this machine's resolver does not fail fast for .invalid names")


@pytest.mark.parametrize("kind", ["dns", "refused"])
def test_an_unreachable_host_is_retried_once_and_the_cause_shown_in_full(
    zoo, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    reg, _, _ = zoo
    art = reg.get(MODEL).artifact("inference")
    url = _unresolvable() if kind == "dns" else _refused_url()
    caplog.set_level(logging.INFO, logger="picozoo")
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as ei:
        pull(art, cache_dir=tmp_path / "cache", mirrors=url)
    assert time.monotonic() - t0 < 3.0
    msg = str(ei.value)
    assert "gave up after 2 attempts" in msg and "..." not in msg and "\n" not in msg
    if kind == "dns":
        assert "cannot resolve host 'picozoo-test.invalid'" in msg
    else:
        assert f"connection refused by {url.removeprefix('http://')}" in msg
    notes = [r.getMessage() for r in caplog.records if r.name.startswith("picozoo")]
    assert len(notes) == 1 and "retrying in" in notes[0], notes


@pytest.mark.slow
def test_cli_prints_retries_on_stderr_and_library_stays_quiet(
    zoo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("inference")
    with serve_directory(mirror) as srv:
        srv.fail_next(art.url_path, 503, times=2)
        pull(art, cache_dir=tmp_path / "c1", mirrors=srv.url)
        assert capsys.readouterr().err == ""  # no logging configured: the library is quiet
        srv.fail_next(art.url_path, 503, times=2)
        r = picozoo("pull", MODEL, PICOZOO_CACHE=str(tmp_path / "c2"), PICOZOO_MIRROR=srv.url)
    assert r.returncode == 0, r.stderr
    notes = r.stderr.strip().splitlines()
    assert len(notes) == 2 and all(n.startswith("picozoo: ") for n in notes), notes
    assert "HTTP 503; retrying in" in notes[0] and "(attempt 2)" in notes[0]


# -- redirects ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_redirect_to_file_url_is_a_one_line_error(zoo, tmp_path: Path) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("inference")
    secret = tmp_path / "secret.tar"
    secret.write_bytes(b"not for you")
    with serve_directory(mirror) as srv:
        srv.redirect(art.url_path, secret.as_uri())
        r = picozoo("pull", MODEL, PICOZOO_CACHE=str(tmp_path / "cache"), PICOZOO_MIRROR=srv.url)
    assert r.returncode == 4, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "follows redirects to http(s) only" in lines[0], lines
    assert_nothing_kept(tmp_path / "cache")


@pytest.mark.parametrize(
    ("hops", "problem"),
    [
        ({"": "/loop/b", "loop/b": "{url}/{path}"}, "redirect loop: .* -> .* -> "),
        ({"": "/hop/0", **{f"hop/{i}": f"/hop/{i + 1}" for i in range(20)}}, "more than 10"),
    ],
)
def test_redirect_loops_and_long_chains_fail_the_source(
    zoo, tmp_path: Path, hops: dict[str, str], problem: str
) -> None:
    reg, mirror, _ = zoo
    art = reg.get(MODEL).artifact("inference")
    with serve_directory(mirror) as srv:
        for src, dst in hops.items():
            srv.redirect(src or art.url_path, dst.format(url=srv.url, path=art.url_path))
        with pytest.raises(DownloadError, match=problem) as ei:
            pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        assert srv.stats.requests[art.url_path] == 1  # not retried as if transient
    assert ei.value.exit_code == 4
    assert_nothing_kept(tmp_path / "cache")


def test_redirects_go_only_to_the_origin_or_a_configured_mirror(zoo, tmp_path: Path) -> None:
    reg, mirror, files = zoo
    art = reg.get(MODEL).artifact("inference")
    other = tmp_path / "other"
    moved = other / "moved" / "x.tar"
    moved.parent.mkdir(parents=True)
    moved.write_bytes(files[(MODEL, "inference")].read_bytes())
    with serve_directory(mirror) as first, serve_directory(other) as elsewhere:
        first.redirect(art.url_path, f"{elsewhere.url}/moved/x.tar")
        # a host that is not a mirror: refused
        with pytest.raises(DownloadError, match="neither the origin nor a configured mirror"):
            pull(art, cache_dir=tmp_path / "c1", mirrors=first.url)
        assert elsewhere.stats.requests["moved/x.tar"] == 0
        # the same host listed as a mirror (it lacks the file at the upstream path): followed
        pull(art, cache_dir=tmp_path / "c2", mirrors=[first.url, elsewhere.url])
        assert elsewhere.stats.full_gets["moved/x.tar"] == 1
        # a redirect on the same host is always followed
        first.redirect(art.url_path, "/elsewhere.tar")
        (mirror / "elsewhere.tar").write_bytes(files[(MODEL, "inference")].read_bytes())
        pull(art, cache_dir=tmp_path / "c3", mirrors=first.url)
        assert first.stats.full_gets["elsewhere.tar"] == 1
    for c in ("c2", "c3"):
        entry = store_at(tmp_path / c).lookup(art)
        assert entry is not None and entry.sha256 == sha256_file(files[(MODEL, "inference")])
