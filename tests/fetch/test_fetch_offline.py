"""Offline mode opens no socket: proven by making every socket connection raise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.artifacts import build_mirror
from support.http_server import serve_directory
from support.store import pin_artifact, pull

from picozoo.errors import OfflineError
from picozoo.hub.registry import load_registry

MODEL = "picodet-s-416"


class SocketOpened(AssertionError):
    pass


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise SocketOpened(f"offline mode tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding picodet-s-416's inference tarball (pulled online first)."""
    monkeypatch.delenv("PICOZOO_OFFLINE", raising=False)
    reg = load_registry()
    build_mirror(reg, tmp_path / "mirror", tmp_path, [MODEL])
    with serve_directory(tmp_path / "mirror") as srv:
        pull(reg.get(MODEL).artifact("inference"), cache_dir=tmp_path / "cache", mirrors=srv.url)
    return tmp_path / "cache"


def test_offline_serves_cache_without_any_socket(cached: Path, no_sockets, monkeypatch) -> None:
    art = load_registry().get(MODEL).artifact("inference")
    monkeypatch.setenv("PICOZOO_OFFLINE", "1")
    monkeypatch.setenv("PICOZOO_MIRROR", "http://127.0.0.1:9")  # must not be contacted
    path = pull(art, cache_dir=cached)
    assert (path / "infer_cfg.yml").is_file()
    assert no_sockets == []


def test_offline_missing_artifact_is_a_clear_error(cached: Path, no_sockets) -> None:
    art = load_registry().get(MODEL).artifact("onnx")
    with pytest.raises(OfflineError) as ei:
        pull(art, cache_dir=cached, offline=True, mirrors="http://127.0.0.1:9")
    assert "picodet-s-416 onnx" in str(ei.value) and "not in the cache" in str(ei.value)
    assert no_sockets == []
    with pytest.raises(OfflineError):
        pin_artifact(art, cache_dir=cached, offline=True)
    assert no_sockets == []


def test_offline_refuses_entries_that_failed_verification(cached: Path, no_sockets) -> None:
    from support.store import store_at

    art = load_registry().get(MODEL).artifact("inference")
    store_at(cached).set_verified(art.url, False)
    with pytest.raises(OfflineError, match="failed verification"):
        pull(art, cache_dir=cached, offline=True)
    assert no_sockets == []


@pytest.mark.slow
def test_offline_cli_in_a_subprocess_opens_no_socket(cached: Path) -> None:
    # Run the real entry point with socket.connect replaced by a tripwire that exits 99.
    code = (
        "import socket, sys\n"
        "def trip(*a, **k):\n"
        "    sys.stderr.write('SOCKET OPENED\\n'); sys.stderr.flush(); import os; os._exit(99)\n"
        "socket.socket.connect = trip\n"
        "socket.socket.connect_ex = trip\n"
        "socket.create_connection = trip\n"
        "sys.argv = ['picozoo'] + sys.argv[1:]\n"
        "from picozoo.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "PICOZOO_CACHE": str(cached), "PICOZOO_MIRROR": "http://127.0.0.1:9"}
    ok = subprocess.run(
        [sys.executable, "-c", code, "pull", MODEL, "--offline"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip()).is_dir()
    missing = subprocess.run(
        [sys.executable, "-c", code, "pull", MODEL, "-a", "weights"],
        capture_output=True, text=True, env={**env, "PICOZOO_OFFLINE": "1"}, check=False,
    )  # fmt: skip
    assert missing.returncode == 7
    assert "SOCKET OPENED" not in missing.stderr
    assert "offline mode" in missing.stderr and missing.stdout == ""
    # the tripwire really fires when a download is attempted
    online = subprocess.run(
        [sys.executable, "-c", code, "pull", MODEL, "-a", "weights"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert online.returncode == 99 and "SOCKET OPENED" in online.stderr
