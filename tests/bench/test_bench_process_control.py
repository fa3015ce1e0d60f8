"""Process control of ``picozoo bench`` (issue 17, items 11, 12, 14, 15): real signals to a real
``python -m picozoo bench`` end its worker and write nothing; thread counts are bounded; the
durations must be finite numbers."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.bench_helpers import run_cli

from picozoo.errors import ExitCode, UsageError


def _workers(parent: int) -> list[int]:
    """Live ``picozoo.bench.worker`` processes started by bench process ``parent``."""
    needle = f"PICOZOO_BENCH_PARENT={parent}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"picozoo.bench.worker" in cmdline and needle in environ:
                found.append(int(entry.name))
    return found


def _bench_then_signal(
    tiny_onnx: Path, tmp_path: Path, signum: int, *, ignore_sigint: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[int], list[int]]:
    """Start a long bench, wait until its worker measures, send ``signum`` to bench alone;
    (the finished process, its workers before the signal, its workers 1 s after it ended)."""
    out = tmp_path / "r.md"
    cmd = [sys.executable, "-m", "picozoo", "bench", str(tiny_onnx), "--min-time", "120"]
    proc = subprocess.Popen(
        [*cmd, "--warmup", "1", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )
    try:
        deadline = time.monotonic() + 60
        while not (before := _workers(proc.pid)) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # measuring
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(1.0)
    left = [pid for pid in before if _state(pid) not in ("gone", "Z")]
    for pid in left:  # never leave one behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not out.exists(), "no result may be written"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), before, left


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGTERM, ExitCode.TERMINATED, "terminated"),
        (signal.SIGINT, ExitCode.INTERRUPTED, "interrupted"),
    ],
)
def test_a_signal_ends_bench_and_its_worker(
    tiny_onnx: Path, tmp_path: Path, signum: int, code: int, said: str
) -> None:
    r, before, left = _bench_then_signal(tiny_onnx, tmp_path, signum)
    assert r.returncode == code, r.stderr
    assert before and left == [], f"worker {left} outlived bench"
    assert r.stderr.splitlines()[-1] == f"picozoo: {said} while measuring: no result was written"
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.slow
def test_sigint_stops_a_bench_started_with_sigint_ignored(tiny_onnx: Path, tmp_path: Path) -> None:
    """A shell starts background jobs with SIGINT ignored; `kill -INT` must still stop bench
    (it used to run to the end, write --out and exit 0)."""
    r, before, left = _bench_then_signal(tiny_onnx, tmp_path, signal.SIGINT, ignore_sigint=True)
    assert r.returncode == ExitCode.INTERRUPTED and before and left == [], r.stderr


@pytest.mark.slow
def test_the_worker_dies_with_a_killed_bench(tiny_onnx: Path) -> None:
    cmd = [sys.executable, "-m", "picozoo", "bench", str(tiny_onnx), "--min-time", "120"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (workers := _workers(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no handler runs; the kernel's parent-death signal ends the worker
    proc.wait()
    time.sleep(1.0)
    left = [pid for pid in workers if _state(pid) not in ("gone", "Z")]  # Z: dead, not reaped
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert workers and left == [], [_state(pid) for pid in left]


@pytest.mark.slow
def test_run_worker_kills_the_whole_group_on_timeout(tmp_path: Path) -> None:
    from picozoo.bench.runner import run_worker

    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        run_worker([sys.executable, "-c", script], "", timeout=3, env=dict(os.environ))
    grandchild = int(pidfile.read_text())
    time.sleep(0.5)
    alive = _state(grandchild) not in ("gone", "Z")
    if alive:
        os.kill(grandchild, signal.SIGKILL)
    assert not alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.parametrize(
    "args",
    [
        ("bench", "m.onnx", "--threads", "100000"),
        ("bench", "m.onnx", "--threads", "1", "--threads", "100000"),
        ("infer", "m.onnx", "x.jpg", "--threads", "100000"),
        ("eval", "m.onnx", "--coco", ".", "--threads", "100000"),
    ],
)
def test_thread_counts_beyond_the_bound_are_refused_in_one_line(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    from picozoo.threads import max_threads

    t0 = time.monotonic()
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == ExitCode.USAGE and time.monotonic() - t0 < 30
    assert r.stderr.strip() == r.stderr.strip().splitlines()[0]  # one line
    assert f"--threads 100000 is more than {max_threads()}" in r.stderr


def test_the_thread_bound_is_tied_to_the_usable_cores() -> None:
    from picozoo.threads import MIN_BOUND, check_threads, max_threads, usable_cores

    assert max_threads() == max(MIN_BOUND, 4 * usable_cores())
    assert max_threads(cores=64) == 256
    check_threads([12])  # upstream's setting, on any machine
    check_threads([256], cores=64)
    with pytest.raises(UsageError, match="more than 256"):
        check_threads([257], cores=64)
    with pytest.raises(UsageError, match="not a thread count"):
        check_threads([0])


@pytest.mark.parametrize(
    ("option", "value"),
    [("--timeout", "nan"), ("--timeout", "inf"), ("--min-time", "nan"), ("--min-time", "inf")],
)
def test_durations_must_be_finite(option: str, value: str, tmp_path: Path) -> None:
    r = run_cli("bench", "m.onnx", option, value, cwd=tmp_path)
    assert r.returncode == ExitCode.USAGE
    assert r.stderr.strip() == (
        f"picozoo: error: Invalid value for '{option}': '{value}' is not a finite number. "
        "(see `picozoo bench --help`)"
    )


def test_the_library_refuses_non_finite_durations_and_too_many_threads() -> None:
    from picozoo.bench import run

    with pytest.raises(UsageError, match="--min-time must be a finite number"):
        run(["m.onnx"], min_time=math.nan)
    with pytest.raises(UsageError, match="--timeout must be a finite number >= 1, got inf"):
        run(["m.onnx"], timeout=math.inf)
    with pytest.raises(UsageError, match="--threads 100000 is more than"):
        run(["m.onnx"], threads=[100000])
