"""Run one benchmark cell in a fresh ``python -m picozoo.bench.worker`` process.

>>> from pathlib import Path
>>> run_cell(BenchSpec(Path("/nonexistent.onnx"), "paddle")).error
'/nonexistent.onnx: no such file or directory'
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any

from .fields import FieldError
from .records import BenchSpec, CellResult, Failure, Measurement, result_from_json

#: Default limit for one cell (load + warm-up + measurement), in seconds.
DEFAULT_TIMEOUT_S = 900.0


def worker_env(spec: BenchSpec) -> dict[str, str]:
    """The worker's environment: ours, plus OpenMP threads pinned to the cell's thread count.

    >>> from pathlib import Path
    >>> worker_env(BenchSpec(Path("m.onnx"), "onnxruntime", threads=3))["OMP_NUM_THREADS"]
    '3'
    """
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(spec.threads)
    return env


def run_cell(
    spec: BenchSpec,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    python: str | None = None,
    debug: bool = False,
) -> CellResult:
    """Run the worker on ``spec``: its :class:`Measurement` (with ``wall_s``), or a
    :class:`Failure`; never raises for a failing cell. ``debug`` copies the stderr of a worker
    that failed or crashed to ours.

    >>> run_cell(BenchSpec(Path("model.onnx"), "onnxruntime", threads=2)).wall_s  # doctest: +SKIP
    3.05
    """
    cmd = [python or sys.executable, "-m", "picozoo.bench.worker"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            input=json.dumps(spec.to_dict()),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=worker_env(spec),
            check=False,
        )
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
