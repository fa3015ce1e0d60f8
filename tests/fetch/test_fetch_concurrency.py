"""Concurrent pulls from separate processes, and the cross-process lock's stale handling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.artifacts import build_mirror, sha256_file
from support.http_server import serve_directory
from support.store import store_at

from picozoo.errors import MutexTimeoutError
from picozoo.hub.mutex import mutex
from picozoo.hub.registry import load_registry

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


@pytest.mark.slow
@pytest.mark.parametrize("locking", ["auto", "soft", "none"])
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
    entry = store_at(cache).lookup(art)
    assert entry is not None and str(entry.path) == paths.pop()
    assert sha256_file(entry.blob) == sha256_file(published) == entry.sha256
    leftovers = [p.name for p in (cache / "downloads").iterdir()]
    assert leftovers == []
    assert [p.name for p in (cache / "unpacked").iterdir()] == [entry.sha256[:16]]


def _killed_holder(lock: Path, mode: str) -> None:
    """Start a process that takes the mutex at ``lock``, then SIGKILL it while it holds it."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from pathlib import Path\n"
        "from picozoo.hub.mutex import mutex\n"
        f"with mutex(Path({str(lock)!r}), mode={mode!r}):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # a live holder is respected
        with (
            pytest.raises(MutexTimeoutError, match="timed out"),
            mutex(lock, mode=mode, timeout=0.3),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "soft"])
def test_mutex_of_a_killed_process_is_taken_over(tmp_path: Path, mode: str) -> None:
    lock = tmp_path / "x.lock"
    _killed_holder(lock, mode)
    if mode == "soft":
        assert lock.exists()  # the lock file stays behind: only its dead owner marks it stale
    t0 = time.monotonic()
    with mutex(lock, mode=mode, timeout=5) as exclusive:
        assert exclusive
    assert time.monotonic() - t0 < 3


@pytest.mark.slow
def test_pull_succeeds_despite_a_stale_lock_file(tmp_path: Path, monkeypatch) -> None:
    from support.store import pull

    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL])
    cache = store_at(tmp_path / "cache")
    _killed_holder(cache.mutex_path(art.url), "soft")
    monkeypatch.setenv("PICOZOO_LOCKING", "soft")
    with serve_directory(tmp_path / "mirror") as srv:
        assert pull(art, cache_dir=cache.root, mirrors=srv.url).is_dir()
