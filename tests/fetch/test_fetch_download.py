"""Downloads against a real loopback server: resume, retries, validators, mirrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.artifacts import build_mirror, make_artifact_file, publish, sha256_file
from support.http_server import serve_directory
from support.store import pull, store_at

from picozoo.errors import DownloadError, WrongContentError
from picozoo.hub.download import download
from picozoo.hub.registry import load_registry

MODEL = "picodet-s-416"


@pytest.fixture
def zoo(tmp_path: Path):
    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    mirror = tmp_path / "mirror"
    files = build_mirror(reg, mirror, tmp_path, [MODEL], nbytes=400_000)
    return art, mirror, files[(MODEL, "inference")]


def test_connection_lost_several_times_resumes_and_matches(zoo, tmp_path: Path) -> None:
    art, mirror, published = zoo
    size = published.stat().st_size
    assert size > 1_500_000
    with serve_directory(mirror) as srv:
        srv.drop_after(art.url_path, 300_000, times=4)
        path = pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        sent = srv.total_bytes(art.url_path)
        assert srv.stats.full_gets[art.url_path] == 1
        assert srv.stats.range_gets[art.url_path] == 4
    assert sent < 1.5 * size, f"transferred {sent} bytes for a {size}-byte file: not resumed"
    entry = store_at(tmp_path / "cache").lookup(art)
    assert entry is not None and entry.path == path
    assert entry.sha256 == sha256_file(published) == sha256_file(entry.blob)
    assert (path / "model.pdiparams").is_file()
    assert not list((tmp_path / "cache" / "downloads").iterdir())


@pytest.mark.slow
def test_interrupt_leaves_resumable_part_never_a_complete_looking_file(zoo, tmp_path: Path) -> None:
    art, mirror, published = zoo
    cache = store_at(tmp_path / "cache")

    def ctrl_c(label: str, done: int, total: int | None) -> None:
        if done > 600_000:
            raise KeyboardInterrupt

    with serve_directory(mirror) as srv:
        # paced, so that the server cannot push the whole file into the socket buffers before
        # the client stops reading (the byte count below is what the server sent)
        srv.rate = 4_000_000
        with pytest.raises(KeyboardInterrupt):
            pull(art, cache_dir=cache.root, mirrors=srv.url, progress=ctrl_c)
        part = cache.part_path(art.url)
        assert part.is_file() and 600_000 <= part.stat().st_size < published.stat().st_size
        assert cache.lookup(art) is None
        assert not cache.blobs_dir.exists() or not list(cache.blobs_dir.iterdir())
        pull(art, cache_dir=cache.root, mirrors=srv.url)
        assert srv.stats.range_gets[art.url_path] == 1
        assert srv.total_bytes(art.url_path) < 1.5 * published.stat().st_size
    entry = cache.lookup(art)
    assert entry is not None and entry.sha256 == sha256_file(published)


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_file_changed_upstream_between_attempts_restarts_instead_of_splicing(
    zoo, tmp_path: Path, validator: str
) -> None:
    art, mirror, published = zoo
    cache = store_at(tmp_path / "cache")

    def ctrl_c(label: str, done: int, total: int | None) -> None:
        if done > 300_000:
            raise KeyboardInterrupt

    with serve_directory(mirror) as srv:
        srv.use_etag = validator == "etag"
        with pytest.raises(KeyboardInterrupt):
            pull(art, cache_dir=cache.root, mirrors=srv.url, progress=ctrl_c)
        # upstream replaces the file with different bytes of the same size
        new_src = make_artifact_file(art, tmp_path / "v2", seed=2, nbytes=400_000)
        publish(art, new_src, mirror)
        import os

        st = published.stat()
        os.utime(published, (st.st_atime + 10, st.st_mtime + 10))  # Last-Modified moves on
        pull(art, cache_dir=cache.root, mirrors=srv.url)
        assert srv.stats.full_gets[art.url_path] == 2  # If-Range failed -> whole new file
    entry = cache.lookup(art)
    assert entry is not None and entry.sha256 == sha256_file(published)


@pytest.mark.slow
def test_server_without_range_support_still_completes(zoo, tmp_path: Path) -> None:
    art, mirror, published = zoo
    with serve_directory(mirror) as srv:
        srv.honour_range = False
        srv.drop_after(art.url_path, 500_000, times=1)
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        assert srv.stats.full_gets[art.url_path] == 2
    entry = store_at(tmp_path / "cache").lookup(art)
    assert entry is not None and entry.sha256 == sha256_file(published)


@pytest.mark.slow
def test_5xx_and_stalls_are_retried(zoo, tmp_path: Path, monkeypatch) -> None:
    art, mirror, published = zoo
    monkeypatch.setenv("PICOZOO_TIMEOUT", "0.5")
    with serve_directory(mirror) as srv:
        srv.fail_next(art.url_path, 503, times=2)
        srv.stall_next(art.url_path, 2.0, times=1)
        pull(art, cache_dir=tmp_path / "cache", mirrors=srv.url)
        codes = [c for p, c in srv.stats.statuses if p == art.url_path]
    assert codes[:2] == [503, 503]
    assert store_at(tmp_path / "cache").lookup(art).sha256 == sha256_file(published)  # type: ignore[union-attr]


def test_gives_up_and_adds_nothing(zoo, tmp_path: Path, monkeypatch) -> None:
    art, mirror, _ = zoo
    monkeypatch.setenv("PICOZOO_RETRIES", "2")
    cache = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        srv.fail_next(art.url_path, 500, times=10)
        with pytest.raises(DownloadError, match="HTTP 500") as ei:
            pull(art, cache_dir=cache.root, mirrors=srv.url)
    assert ei.value.hint == "check the network or --mirror/PICOZOO_MIRROR and re-run"  # no bytes
    assert cache.lookup(art) is None
    assert not cache.blobs_dir.exists() or not list(cache.blobs_dir.iterdir())


@pytest.mark.slow
def test_truncated_responses_forever_fail_cleanly(zoo, tmp_path: Path) -> None:
    art, mirror, published = zoo
    cache = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        srv.drop_after(art.url_path, 1000, times=1000)
        with pytest.raises(DownloadError, match="gave up") as ei:
            pull(art, cache_dir=cache.root, mirrors=srv.url)
    part = cache.part_path(art.url)
    assert 0 < part.stat().st_size < published.stat().st_size  # kept for a later resume
    assert f"partial download ({part.stat().st_size} bytes) is kept" in (ei.value.hint or "")
    assert cache.lookup(art) is None


def test_mirrors_are_tried_in_order(zoo, tmp_path: Path, monkeypatch) -> None:
    art, mirror, _published = zoo
    monkeypatch.setenv("PICOZOO_RETRIES", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    with serve_directory(empty) as bad, serve_directory(mirror) as good:
        dead = "http://127.0.0.1:1"
        monkeypatch.setenv("PICOZOO_MIRROR", f"{dead},{bad.url}, {good.url}")
        pull(art, cache_dir=tmp_path / "cache")
        assert bad.stats.requests[art.url_path] == 1
        assert good.stats.full_gets[art.url_path] == 1


def test_all_mirrors_missing_says_so(zoo, tmp_path: Path) -> None:
    art, _, _ = zoo
    empty = tmp_path / "empty"
    empty.mkdir()
    with serve_directory(empty) as srv, pytest.raises(DownloadError) as ei:
        pull(art, cache_dir=tmp_path / "cache", mirrors=[srv.url, empty.as_uri()])
    assert "HTTP 404" in str(ei.value) and "no such file" in str(ei.value)
    assert "not at any source" in (ei.value.hint or "")


@pytest.mark.slow
def test_hash_only_download_survives_drops(zoo) -> None:
    art, mirror, published = zoo
    with serve_directory(mirror) as srv:
        srv.drop_after(art.url_path, 250_000, times=3)
        r = download([f"{srv.url}/{art.url_path}"], None)
    assert r.sha256 == sha256_file(published) and r.size == published.stat().st_size


def test_complete_part_left_by_a_crash_is_not_downloaded_again(zoo, tmp_path: Path) -> None:
    art, mirror, published = zoo
    cache = store_at(tmp_path / "cache")
    seen: list[int] = []

    def crash_at_the_end(label: str, done: int, total: int | None) -> None:
        seen.append(done)
        if total is not None and done == total:
            raise KeyboardInterrupt  # every byte is in the .part, nothing renamed yet

    with serve_directory(mirror) as srv:
        with pytest.raises(KeyboardInterrupt):
            pull(art, cache_dir=cache.root, mirrors=srv.url, progress=crash_at_the_end)
        assert cache.part_path(art.url).stat().st_size == published.stat().st_size
        pull(art, cache_dir=cache.root, mirrors=srv.url)
        assert srv.total_bytes(art.url_path) == published.stat().st_size
        assert [c for p, c in srv.stats.statuses if p == art.url_path] == [200, 416]
    assert cache.lookup(art).sha256 == sha256_file(published)  # type: ignore[union-attr]


def test_a_file_mirror_holding_an_error_page_is_refused_before_copying(tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("weights")
    mirror = tmp_path / "mirror"
    page = mirror / art.url_path
    page.parent.mkdir(parents=True)
    page.write_text("<html><body>404 Not Found</body></html>\n")
    cache = store_at(tmp_path / "cache")
    with pytest.raises(WrongContentError, match=r"an HTML page \(no Content-Type\), not a pickled"):
        pull(art, cache_dir=cache.root, mirrors=mirror.as_uri())
    assert not [p for p in cache.root.rglob("*") if p.is_file() and "locks" not in p.parts]
