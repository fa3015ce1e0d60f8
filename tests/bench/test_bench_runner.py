"""The fresh-process runner: a real worker subprocess per cell, and its failure modes."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from picozoo.bench.records import BenchSpec, CellResult, Failure, Measurement
from picozoo.bench.runner import run_cell, worker_env


@pytest.mark.slow
def test_cell_result_has_statistics(tiny_onnx: Path) -> None:
    r = run_cell(BenchSpec(tiny_onnx, "onnxruntime", 1, 1, 12, 0.0))
    assert isinstance(r, Measurement), r
    assert r.stats.n == len(r.samples_ns) == 12
    assert r.stats.median_ms == pytest.approx(statistics.median(r.samples_ns) / 1e6)
    assert r.stability.stable in (True, False)
    assert r.wall_s is not None and r.wall_s > r.load_ms / 1e3


def test_worker_pins_openmp_threads() -> None:
    assert worker_env(BenchSpec(Path("m.onnx"), "onnxruntime", threads=3))["OMP_NUM_THREADS"] == "3"


@pytest.mark.slow
def test_timeout_is_a_failed_cell(tiny_onnx: Path) -> None:
    r = run_cell(BenchSpec(tiny_onnx, "onnxruntime", 1, 0, 1, 60.0), timeout=1)
    assert r == Failure("timeout", "no result after 1 s", "raise --timeout or lower --min-time")


def fake_worker(tmp_path: Path, script: str) -> CellResult:
    """What run_cell makes of a "python" that runs the shell ``script`` instead."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return run_cell(BenchSpec(Path("x.onnx"), "onnxruntime"), python=str(fake))


def test_crashing_worker_is_a_failed_cell(tmp_path: Path) -> None:
    r = fake_worker(tmp_path, "echo 'Fatal: boom' >&2\nexit 139\n")
    assert isinstance(r, Failure) and r.stage == "crash"
    assert r.error == "worker exited with code 139: Fatal: boom"


def test_unreadable_worker_result_is_a_failed_cell(tmp_path: Path) -> None:
    r = fake_worker(tmp_path, """echo '{"ok": true, "samples_ns": []}'\n""")
    assert isinstance(r, Failure) and r.stage == "crash"
    assert "not readable" in r.error and "$.samples_ns: needs at least 1 item" in r.error


def test_failed_worker_log_is_shown_only_in_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "python"
    fake.write_text(
        '#!/bin/sh\necho "worker log line" >&2\n'
        'echo \'{"ok": false, "stage": "load", "error": "boom", "hint": null}\'\n'
    )
    fake.chmod(0o755)
    spec = BenchSpec(Path("x.onnx"), "onnxruntime")
    assert run_cell(spec, python=str(fake)) == Failure("load", "boom")
    assert capsys.readouterr().err == ""
    assert run_cell(spec, python=str(fake), debug=True) == Failure("load", "boom")
    assert "worker log line" in capsys.readouterr().err


@pytest.mark.slow
def test_worker_reads_spec_file_and_keeps_stdout_clean(tiny_onnx: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(BenchSpec(tiny_onnx, "onnxruntime", 1, 0, 3, 0.0).to_dict()))
    out = subprocess.run(
        [sys.executable, "-m", "picozoo.bench.worker", str(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(out.stdout.splitlines()) == 1 and json.loads(out.stdout)["ok"] is True
    bad = subprocess.run(
        [sys.executable, "-m", "picozoo.bench.worker", str(tmp_path / "absent.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 3
    assert json.loads(bad.stdout)["stage"] == "spec"


@pytest.mark.slow
def test_peak_rss_is_the_workers_own_not_its_parents(tiny_onnx: Path) -> None:
    """A parent that once held 400 MB (as after an in-process conversion) starts a worker: the
    worker reports its own peak (getrusage's ru_maxrss would report the parent's)."""
    code = f"""
import json, resource
from pathlib import Path
from picozoo.bench.records import BenchSpec
from picozoo.bench.runner import run_cell
big = b"x" * (400 << 20)
del big
r = run_cell(BenchSpec(Path({str(tiny_onnx)!r}), "onnxruntime", 1, 1, 5, 0.0))
parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"parent": parent, "peak": r.peak_rss_mb, "before": r.rss_before_load_mb}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mb = json.loads(out.stdout)
    assert mb["parent"] > 400
    assert 10 < mb["before"] < mb["peak"] < 250, mb


def _worker_of_this_process(timeout: float = 300) -> int:
    """The pid of this process's ``picozoo.bench.worker`` child, once it has loaded ONNX
    Runtime (its interpreter is up, so a fault is reported); fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (proc / "cmdline").read_bytes()
                loaded = ppid == os.getpid() and "onnxruntime" in (proc / "maps").read_text()
            except (OSError, ValueError, IndexError):
                continue
            if loaded and b"picozoo.bench.worker" in cmd:
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no worker with ONNX Runtime loaded in {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("debug", [False, True])
def test_a_crashed_worker_shows_its_log_in_debug(
    tiny_onnx: Path, debug: bool, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real worker dies of a segmentation fault mid-measurement (Python's fault handler on,
    as a user would debug it): a crashed cell, and with debug (PICOZOO_DEBUG=1, as the hint
    says) the worker's log is on our stderr."""
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")  # the worker inherits our environment
    spec = BenchSpec(tiny_onnx, "onnxruntime", 1, 0, 10**9, 600.0)
    results: list[CellResult] = []
    cell = threading.Thread(target=lambda: results.append(run_cell(spec, debug=debug)))
    cell.start()
    os.kill(_worker_of_this_process(), signal.SIGSEGV)
    cell.join(timeout=300)
    (r,) = results
    assert isinstance(r, Failure) and r.stage == "crash", r
    assert r.error.startswith("worker exited with code -11: ")
    assert r.hint == "rerun with PICOZOO_DEBUG=1 to see the worker's log"
    # the fault handler's report (on the worker's stderr: the thread the signal lands on may be
    # one of the engine's, with no Python frame to show)
    shown = "Fatal Python error: Segmentation fault" in capfd.readouterr().err
    assert shown is debug
