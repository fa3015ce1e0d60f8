"""Run one benchmark cell in a fresh ``python -m picozoo.bench.worker`` process.

>>> cell = run_cell({"path": "/nonexistent.onnx", "engine": "onnxruntime", "threads": 1})
>>> cell["ok"], cell["error"]
(False, '/nonexistent.onnx does not exist')
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from .stats import stability, summarize

#: Default limit for one cell (load + warm-up + measurement), in seconds.
DEFAULT_TIMEOUT_S = 900.0


def worker_env(spec: dict[str, Any]) -> dict[str, str]:
    """The worker's environment: ours, plus OpenMP threads pinned to the cell's thread count."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(int(spec.get("threads", 1)))
    return env


def run_cell(
    spec: dict[str, Any], *, timeout: float | None = DEFAULT_TIMEOUT_S, python: str | None = None
) -> dict[str, Any]:
    """Run the worker on ``spec`` and return its result, with ``stats`` and ``stability`` added
    when it succeeded. Never raises for a failing cell: ``{"ok": False, "error": ...}``."""
    cmd = [python or sys.executable, "-m", "picozoo.bench.worker"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=worker_env(spec),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return failure(
            "timeout", f"no result after {timeout:g} s", "raise --timeout or lower --min-time"
        )
    wall = time.perf_counter() - t0
    result = _parse(proc.stdout)
    if result is None:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        return failure(
            "crash",
            f"worker exited with code {proc.returncode}: {tail[0][:300]}",
            "rerun with PICOZOO_DEBUG=1 to see the worker's log",
        )
    result["wall_s"] = wall
    if result.get("ok"):
        samples_ms = [ns / 1e6 for ns in result["samples_ns"]]
        result["stats"] = summarize(samples_ms)
        result["stability"] = stability(result["stats"])
    elif os.environ.get("PICOZOO_DEBUG") == "1":
        sys.stderr.write(proc.stderr)
    return result


def failure(stage: str, error: str, hint: str | None = None) -> dict[str, Any]:
    """A failed cell result, as the worker would report it."""
    return {"ok": False, "stage": stage, "error": error, "hint": hint}


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "ok" in data:
            return data
    return None
