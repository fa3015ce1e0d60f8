"""Download, offline and disk errors are also the standard exceptions (ConnectionError,
OSError), so library callers can catch what they know; exit codes and messages are unchanged."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from support.http_server import serve_directory

from picozoo.errors import DiskError, DownloadError, ExitCode, OfflineError, PicozooError
from picozoo.hub.disk import disk_error
from picozoo.hub.pull import pull
from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.settings import NetworkSettings, Settings

MODEL = "picodet-xs-320"


def test_a_failed_pull_is_a_connection_error_with_its_exit_code(tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("onnx")
    (tmp_path / "empty").mkdir()
    with serve_directory(tmp_path / "empty") as srv:
        settings = Settings(cache_dir=tmp_path / "c", mirrors=(srv.url,),
                            network=NetworkSettings(retries=0, backoff=0.01))  # fmt: skip
        with pytest.raises(ConnectionError) as caught:  # what a library caller knows
            pull(Store(settings), art)
    e = caught.value
    assert isinstance(e, DownloadError) and isinstance(e, OSError) and isinstance(e, PicozooError)
    assert e.exit_code == ExitCode.DOWNLOAD == 4
    assert e.message.startswith(f"could not download {MODEL} onnx: ") and "HTTP 404" in e.message
    assert str(e) == f"{e.message} ({e.hint})"  # PicozooError's rendering, not OSError's


def test_offline_is_a_connection_error(tmp_path: Path) -> None:
    art = load_registry().get(MODEL).artifact("onnx")
    with pytest.raises(ConnectionError) as caught:
        pull(Store(Settings(cache_dir=tmp_path / "c", offline=True)), art)
    assert isinstance(caught.value, OfflineError)
    assert caught.value.exit_code == ExitCode.OFFLINE == 7


def test_a_disk_error_is_an_os_error() -> None:
    full = disk_error(OSError(errno.ENOSPC, "No space left on device"), Path("/c"))
    assert isinstance(full, DiskError) and isinstance(full, OSError)
    assert full.exit_code == ExitCode.DISK == 12
    assert full.message.startswith("no space left on the disk holding /c")
    try:
        raise full
    except OSError as e:  # caught by a plain `except OSError`
        assert e is full


@pytest.mark.slow
def test_the_cli_still_prints_one_line_and_the_same_exit_code(tmp_path: Path) -> None:
    env = {"PICOZOO_CACHE": str(tmp_path / "c"), "PICOZOO_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "picozoo", "pull", MODEL, "-a", "onnx"],
                       capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert r.returncode == 7, r.stderr
    assert r.stderr.startswith("picozoo: error: ") and "Traceback" not in r.stderr
