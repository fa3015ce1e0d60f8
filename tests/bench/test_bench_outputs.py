"""Where results go when things go wrong: an unwritable --out/--plot is refused before anything
is measured, a write that fails after measuring saves the work to a temporary file (named in a
one-line error), and Ctrl-C says what it interrupted."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.bench_helpers import run_cli

from picozoo.bench.output import Output, check_writable, write_outputs
from picozoo.bench.records import load_document
from picozoo.errors import ExitCode, UsageError

FAST = ("--threads", "1", "--min-iters", "10", "--min-time", "0", "--warmup", "1")
#: how long a loaded machine may take to start picozoo, reach the awaited line, or exit
WAIT = 300
TOO_LONG = "r" * 300  # a file name the file system refuses (ENAMETOOLONG), after any check


@pytest.mark.slow
def test_unwritable_out_is_refused_before_measuring(tiny_onnx: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = run_cli("bench", str(tiny_onnx), *FAST, "--plot", str(blocker / "p.png"))
    assert r.returncode == ExitCode.USAGE and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"picozoo: error: cannot write --plot {blocker / 'p.png'}: {blocker} is not a folder "
        "(choose a path in a writable folder)"
    ]  # one line, and nothing was measured
    r = run_cli("report", "show", str(tmp_path / "x.json"), "--out", str(blocker / "r.md"))
    assert r.returncode == ExitCode.USAGE and r.stderr.splitlines() == [
        f"picozoo: error: cannot write --out {blocker / 'r.md'}: {blocker} is not a folder "
        "(choose a path in a writable folder)"
    ]


@pytest.mark.slow
def test_write_failing_after_measuring_keeps_the_work(tiny_onnx: Path, tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    out, png = tmp_path / f"{TOO_LONG}.md", tmp_path / f"{TOO_LONG}.png"
    outputs = ("--out", str(out), "--plot", str(png))
    r = run_cli("bench", str(tiny_onnx), *FAST, "--report", "md", *outputs, env=env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    (error,) = [line for line in r.stderr.splitlines() if line.startswith("picozoo: error")]
    assert r.stderr.splitlines()[-1] == error and r.stdout == ""
    saved = sorted(temp.glob("picozoo-*"))
    by_suffix = {p.suffix: p for p in saved}
    assert sorted(by_suffix) == [".json", ".md", ".png"] and len(saved) == 3
    assert f"cannot write --out {out} (File name too long); the report is saved in " in error
    assert f"the report is saved in {by_suffix['.md']}" in error
    assert f"the plot is saved in {by_suffix['.png']}" in error
    assert f"the results are in {by_suffix['.json']}, for `picozoo report show`" in error
    assert by_suffix[".md"].read_text().startswith("| Model | Input size |")
    assert by_suffix[".png"].read_bytes().startswith(b"\x89PNG")
    (cell,) = load_document(by_suffix[".json"]).cells  # every measurement, re-renderable
    assert cell.ok and cell.model == "tiny_conv"


def test_write_outputs_saves_aside_and_names_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    said: list[str] = []
    good = Output("--plot", tmp_path / "ok" / "p.png", b"png", "plot")
    bad = Output("--out", tmp_path / f"{TOO_LONG}.json", b"{}")
    results = Output("results", Path("bench-results.json"), b"{}", "results")
    with pytest.raises(UsageError) as e:
        write_outputs([good, bad], say=said.append, results=results)
    assert said == [f"wrote {good.path}"] and good.path.read_bytes() == b"png"
    aside = sorted(p for p in tmp_path.iterdir() if p.name.startswith("picozoo-"))
    assert len(aside) == 1  # the results are that same report: saved once
    assert str(e.value) == (
        f"cannot write --out {bad.path} (File name too long); the report is saved in {aside[0]} "
        "(move it where you want it)"
    )
    check_writable(tmp_path / "new" / "deeper" / "r.md", "--out")  # folders are created later


def _stderr_lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """A queue of ``proc``'s stderr lines, and the thread filling it (it ends at EOF)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


def _interrupt_when(
    proc: subprocess.Popen[str], seen: str, also: Callable[[], bool] = lambda: True
) -> list[str]:
    """Send Ctrl-C (SIGINT) once a stderr line contains ``seen`` (and ``also()`` holds); every
    stderr line. Each wait is bounded by ``WAIT`` and fails with what was seen."""
    (lines, pump), got = _stderr_lines(proc), []
    deadline = time.monotonic() + WAIT
    while not any(seen in line for line in got):
        with contextlib.suppress(queue.Empty):
            got.append(lines.get(timeout=0.5))
        assert proc.poll() is None or not lines.empty(), "\n".join(got)
        assert time.monotonic() < deadline, f"no {seen!r} in {WAIT} s: {got}"
    while not also():
        assert proc.poll() is None and time.monotonic() < deadline, "\n".join(got)
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=WAIT)
    pump.join(timeout=WAIT)  # every line up to EOF
    while not lines.empty():
        got.append(lines.get_nowait())
    return got


@pytest.mark.slow
def test_ctrl_c_while_measuring_says_no_result_was_written(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    cmd = [sys.executable, "-m", "picozoo", "bench", str(tiny_onnx), "--min-time", "60"]
    proc = subprocess.Popen([*cmd, "--out", str(out)], stderr=subprocess.PIPE, text=True)
    got = _interrupt_when(proc, "measuring ...")
    assert proc.returncode == ExitCode.INTERRUPTED
    assert got[-1] == "picozoo: interrupted while measuring: no result was written"
    assert not out.exists() and "partial downloads" not in "\n".join(got)


@pytest.mark.slow
def test_ctrl_c_while_pulling_says_partial_downloads_are_kept(tmp_path: Path) -> None:
    from support.artifacts import onnx_like, publish, write_registry
    from support.http_server import serve_directory

    from picozoo.hub.registry import load_registry
    from picozoo.hub.store import Store
    from picozoo.settings import Settings

    reg = load_registry(write_registry(tmp_path / "registry.yaml", ["picodet-legacy-s-320"]))
    art = reg.get("picodet-legacy-s-320").artifact("onnx-nopp")
    big = tmp_path / "big.onnx"
    big.write_bytes(onnx_like(os.urandom(4 << 20)))  # starts like ONNX: pull's check passes
    publish(art, big, tmp_path / "mirror")
    part = Store(Settings(cache_dir=tmp_path / "cache")).part_path(art.url)
    with serve_directory(tmp_path / "mirror") as srv:
        srv.hold_after(art.url_path, 1 << 20)  # 1 MB, then a pause until the server stops
        env = {
            **os.environ,
            "PICOZOO_MIN_SPEED": "0",  # the pause is not a stalled download
            "PICOZOO_MIRROR": srv.url,
            "PICOZOO_CACHE": str(tmp_path / "cache"),
            "PICOZOO_REGISTRY": reg.path,
        }
        cmd = [sys.executable, "-m", "picozoo", "bench", "picodet-legacy-s-320"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        got = _interrupt_when(
            proc, "pulling onnx-nopp", lambda: part.exists() and part.stat().st_size > 0
        )
    assert proc.returncode == ExitCode.INTERRUPTED
    assert 0 < part.stat().st_size < big.stat().st_size  # the partial download is kept
    assert got[-1] == (
        "picozoo: interrupted while preparing the models: no result was written (partial "
        "downloads are kept and resumed next time)"
    )
