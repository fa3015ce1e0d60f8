"""The one error path (issue 17, item 14): whatever escapes a command -- an OpenCV error, an
engine's exception, a full or read-only disk, any other OSError, a bug -- is one
``picozoo: error:`` line with its documented exit code, the traceback only with
PICOZOO_DEBUG=1; a cache path that is a file is refused in one line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from picozoo.cli import COMMANDS, error_for, main
from picozoo.errors import ExitCode


def _cv2_error() -> None:
    import cv2
    import numpy as np

    cv2.resize(np.zeros((0, 0), np.uint8), (1, 1))


def _onnxruntime_error() -> None:
    import onnxruntime

    onnxruntime.InferenceSession(b"not a model")


def _enospc() -> None:
    with open("/dev/full", "wb") as f:
        f.write(b"x")
        f.flush()


def _eio() -> None:
    raise OSError(errno.EIO, "Input/output error", "/data/r.json")


def _bug() -> None:
    {}["missing"]


CASES: dict[str, tuple[Callable[[], None], int, str]] = {
    "cv2": (_cv2_error, ExitCode.USAGE, "picozoo: error: OpenCV cannot process this input: "),
    "onnxruntime": (_onnxruntime_error, ExitCode.ENGINE, "picozoo: error: ONNX Runtime failed: "),
    "enospc": (_enospc, ExitCode.DISK, "picozoo: error: No space left on device while writing "),
    "eio": (_eio, ExitCode.FAILED, "picozoo: error: Input/output error: /data/r.json"),
    "bug": (_bug, ExitCode.FAILED, "picozoo: error: unexpected KeyError: 'missing' (this is a "),
}


@click.command("boom")
@click.argument("case")
def boom_cmd(case: str) -> None:
    """Raise the real exception of CASE."""
    CASES[case][0]()


@pytest.mark.parametrize("case", list(CASES))
def test_what_escapes_a_command_is_one_line_with_its_exit_code(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cv2" if case == "cv2" else "json")
    pytest.importorskip("onnxruntime" if case == "onnxruntime" else "json")
    monkeypatch.setitem(COMMANDS, "boom", f"{__name__}:boom_cmd")
    monkeypatch.delenv("PICOZOO_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["boom", case])
    err = capsys.readouterr().err
    assert e.value.code == CASES[case][1], err
    assert err.count("\n") == 1 and err.startswith(CASES[case][2]), err
    monkeypatch.setenv("PICOZOO_DEBUG", "1")
    with pytest.raises(SystemExit):
        main(["boom", case])
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_read_only_and_forbidden_paths_are_disk_errors_naming_the_path() -> None:
    for code in (errno.EROFS, errno.EACCES, errno.EPERM):
        e = error_for(OSError(code, os.strerror(code), "/mnt/ro/out.json"))
        assert e.exit_code == ExitCode.DISK and "cannot write to /mnt/ro/out.json" in str(e)
    assert error_for(OSError(errno.EDQUOT, "Disk quota exceeded")).exit_code == ExitCode.DISK


def test_an_exception_raised_inside_an_engine_package_is_an_engine_error() -> None:
    """OpenVINO raises builtin RuntimeErrors: the raising frame's package says it is the
    engine's."""
    namespace: dict[str, object] = {"__name__": "openvino.runtime.fake"}
    exec("def compile_model():\n    raise RuntimeError('Exception from src/inference')", namespace)
    try:
        namespace["compile_model"]()  # type: ignore[operator]
    except RuntimeError as e:
        error = error_for(e)
    assert error.exit_code == ExitCode.ENGINE
    assert str(error).startswith("OpenVINO failed: Exception from src/inference")


@pytest.mark.slow
@pytest.mark.parametrize("under", ["", "sub/cache"])
def test_a_cache_path_that_is_or_lies_under_a_file_is_one_line(tmp_path: Path, under: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    cache = afile / under if under else afile
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    for args in (["cache", "ls"], ["pull", "picodet-s-416", "--offline"], ["verify"]):
        r = subprocess.run(
            [sys.executable, "-m", "picozoo", *args],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert r.returncode == ExitCode.USAGE, r.stderr
        assert r.stderr == (
            f"picozoo: error: PICOZOO_CACHE {cache}: {afile} is a file, not a folder (point it "
            "at a folder; a missing one is created)\n"
        )
    assert afile.read_text() == "x"
