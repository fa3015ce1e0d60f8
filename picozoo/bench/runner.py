"""Run one benchmark cell in a fresh ``python -m picozoo.bench.worker`` process.

The worker runs in its own process group (session): whatever ends :func:`run_cell` early --
its timeout, Ctrl-C, SIGTERM (:class:`picozoo.cli.Terminated`) or any exception -- kills that
whole group before it propagates, and the worker asks the kernel to kill it when this process
dies (``PR_SET_PDEATHSIG`` on Linux), so no worker outlives the bench that started it.

>>> from pathlib import Path
>>> run_cell(BenchSpec(Path("/nonexistent.onnx"), "paddle")).error
'/nonexistent.onnx: no such file or directory'
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from .fields import FieldError
from .records import BenchSpec, CellResult, Failure, Measurement, result_from_json

#: Default limit for one cell (load + warm-up + measurement), in seconds.
DEFAULT_TIMEOUT_S = 900.0


def worker_env(spec: BenchSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: ours (or ``base``), plus OpenMP threads pinned to the cell's
    thread count.

    >>> from pathlib import Path
    >>> worker_env(BenchSpec(Path("m.onnx"), "onnxruntime", threads=3))["OMP_NUM_THREADS"]
    '3'
    """
    env = dict(os.environ if base is None else base)
    env["OMP_NUM_THREADS"] = str(spec.threads)
    return env


def run_cell(
    spec: BenchSpec,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    python: str | None = None,
    debug: bool = False,
    stop: Callable[[], bool] | None = None,
    environ: Mapping[str, str] | None = None,
) -> CellResult:
    """Run the worker on ``spec``: its :class:`Measurement` (with ``wall_s``), or a
    :class:`Failure`; never raises for a failing cell. ``debug`` copies the stderr of a worker
    that failed or crashed to ours. ``stop``: asked every :data:`POLL_S` seconds; when it says
    True the worker's process group is killed and the cell is a ``cancelled`` failure (a
    ``bench --cluster`` whose client cancelled it). ``environ``: the worker's environment
    instead of ours (see :func:`worker_env`).

    >>> run_cell(BenchSpec(Path("model.onnx"), "onnxruntime", threads=2)).wall_s  # doctest: +SKIP
    3.05
    """
    cmd = [python or sys.executable, "-m", "picozoo.bench.worker"]
    t0 = time.perf_counter()
    try:
        proc = run_worker(
            cmd,
            json.dumps(spec.to_dict()),
            timeout=timeout,
            env=worker_env(spec, environ),
            stop=stop,
        )
    except Stopped:
        return Failure("cancelled", "the cell was cancelled before it finished")
    except subprocess.TimeoutExpired:
        return Failure(
            "timeout", f"no result after {timeout:g} s", "raise --timeout or lower --min-time"
        )
    wall = time.perf_counter() - t0
    result = _parse(proc.stdout)
    if isinstance(result, Measurement):
        return dataclasses.replace(result, wall_s=wall)
    if debug:  # a failed or crashed worker: its whole log
        sys.stderr.write(proc.stderr)
    if result is None:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return Failure(
            "crash",
            f"worker exited with code {proc.returncode}: {tail[0][:300]}",
            "rerun with PICOZOO_DEBUG=1 to see the worker's log",
        )
    return result


class Stopped(Exception):
    """:func:`run_worker`'s ``stop`` said stop: the worker was killed."""


#: how often :func:`run_worker` asks its ``stop`` callback (seconds)
POLL_S = 0.25


def run_worker(
    cmd: list[str],
    data: str,
    *,
    timeout: float | None,
    env: dict[str, str],
    stop: Callable[[], bool] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, input=data, capture_output=True, text=True)`` with the worker in a
    new session; anything that ends the wait (``TimeoutExpired``, ``KeyboardInterrupt``,
    SIGTERM's exception, ``stop()`` turning True: :class:`Stopped`) kills the worker's whole
    process group, then propagates.

    >>> run_worker([sys.executable, "-c", "print(input())"], "hi", timeout=30, env={}).stdout
    'hi\\n'
    """
    env = {**env, PARENT_ENV: str(os.getpid())}
    with subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            out, err = _communicate(proc, data, timeout, stop)
        except BaseException:
            _kill_group(proc)
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _communicate(
    proc: subprocess.Popen[str], data: str, timeout: float | None, stop: Callable[[], bool] | None
) -> tuple[str, str]:
    """``proc.communicate(data, timeout=timeout)``, asking ``stop`` every :data:`POLL_S` s
    (a retried ``communicate`` loses no output and goes on writing ``data``: it is given once)."""
    if stop is None:
        return proc.communicate(data, timeout=timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    send: str | None = data
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        try:
            return proc.communicate(
                send, timeout=POLL_S if left is None else max(0.0, min(POLL_S, left))
            )
        except subprocess.TimeoutExpired:
            send = None
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0.0) from None
            if stop():
                raise Stopped() from None


#: The worker's environment names the process that started it (see the worker's
#: ``die_with_parent``).
PARENT_ENV = "PICOZOO_BENCH_PARENT"


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the worker and anything it started (its process group), and reap it."""
    killpg = getattr(os, "killpg", None)
    with contextlib.suppress(OSError):
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL)
        else:  # no process groups (Windows)
            proc.kill()
    with contextlib.suppress(BaseException):
        proc.wait(timeout=10)


def _parse(stdout: str) -> CellResult | None:
    """The result on the worker's last JSON line (None: there is none)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            data: Any = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "ok" in data:
            try:
                return result_from_json(data)
            except FieldError as e:
                return Failure("crash", f"the worker's result is not readable: {e}")
    return None
