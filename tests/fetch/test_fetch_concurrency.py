"""Concurrent pulls from separate processes, and the cross-process lock's stale handling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.artifacts import build_mirror, sha256_file
from support.http_server import serve_directory

from picozoo.cache import Cache
from picozoo.filelock import FileLock, LockTimeoutError
from picozoo.registry import load_registry

MODEL = "picodet-s-416"


def _spawn_pulls(n: int, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "picozoo", "pull", MODEL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("locking", ["auto", "excl", "none"])
def test_eight_concurrent_pulls_download_once(tmp_path: Path, locking: str) -> None:
    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    published = build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL], nbytes=300_000)[
        (MODEL, "inference")
    ]
    cache = tmp_path / "cache"
    with serve_directory(tmp_path / "mirror") as srv:
        srv.rate = 1_500_000  # ~1 s per download, so the processes overlap
        env = {
            **os.environ,
            "PICOZOO_CACHE": str(cache),
            "PICOZOO_MIRROR": srv.url,
            "PICOZOO_LOCKING": locking,
        }
        procs = _spawn_pulls(8, env)
        outs = [p.communicate(timeout=120) for p in procs]
        codes = [p.returncode for p in procs]
        downloads = srv.stats.full_gets[art.url_path]
    assert codes == [0] * 8, [e for _, e in outs]
    paths = {o.strip() for o, _ in outs}
    assert len(paths) == 1
    if locking != "none":
        assert downloads == 1, f"{downloads} downloads for 8 pulls"
    else:  # no locking: maybe several downloads, but never a corrupt or differing result
        assert 1 <= downloads <= 8
    entry = Cache(cache).lookup(art)
    assert entry is not None and str(entry.path) == paths.pop()
    assert sha256_file(entry.blob) == sha256_file(published) == entry.sha256
    leftovers = [p.name for p in (cache / "downloads").iterdir()]
    assert leftovers == []
    assert [p.name for p in (cache / "unpacked").iterdir()] == [entry.sha256[:16]]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_excl_lock_left_by_a_dead_process_is_broken(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text(f"{_dead_pid()} {socket.gethostname()} {time.time():.0f}\n")
    t0 = time.monotonic()
    with FileLock(lock, mode="excl", timeout=5) as lk:
        assert lk.exclusive and lk.mode_used == "excl"
        assert lock.read_text().split()[0] == str(os.getpid())
    assert time.monotonic() - t0 < 2
    assert not lock.exists()


def test_excl_lock_of_a_live_process_is_respected_until_it_goes_stale(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock = tmp_path / "x.lock"
        lock.write_text(f"{holder.pid} {socket.gethostname()} {time.time():.0f}\n")
        with pytest.raises(LockTimeoutError, match="gave up waiting"):
            FileLock(lock, mode="excl", timeout=0.3).acquire()
        old = time.time() - 3600
        os.utime(lock, (old, old))  # no heartbeat for an hour: the holder is hung
        with FileLock(lock, mode="excl", timeout=2, stale_after=600) as lk:
            assert lk.exclusive
    finally:
        holder.kill()
        holder.wait()


def test_flock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    code = (
        f"import sys, time; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from picozoo.filelock import FileLock\n"
        f"lk = FileLock(__import__('pathlib').Path({str(lock)!r}), mode='flock').acquire()\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeoutError):
            FileLock(lock, mode="flock", timeout=0.3).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with FileLock(lock, mode="flock", timeout=2) as lk:
            assert lk.exclusive and lk.mode_used == "flock"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_pull_succeeds_despite_a_stale_lock_file(tmp_path: Path, monkeypatch) -> None:
    from picozoo.fetch import pull

    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL])
    cache = Cache(tmp_path / "cache")
    lock = cache.lock_path(art.url)
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{_dead_pid()} {socket.gethostname()} 0\n")
    monkeypatch.setenv("PICOZOO_LOCKING", "excl")
    with serve_directory(tmp_path / "mirror") as srv:
        assert pull(art, cache_dir=cache.root, mirrors=srv.url).is_dir()
