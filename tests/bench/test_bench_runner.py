"""The fresh-process runner: a real worker subprocess per cell, and its failure modes."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

from picozoo.bench.runner import run_cell, worker_env


def test_cell_result_has_statistics(tiny_onnx: Path) -> None:
    r = run_cell(
        {
            "path": str(tiny_onnx),
            "engine": "onnxruntime",
            "threads": 1,
            "warmup": 1,
            "min_iters": 12,
            "min_time_s": 0,
        }
    )
    assert r["ok"], r
    assert r["stats"]["n"] == len(r["samples_ns"]) == 12
    assert r["stats"]["median_ms"] == pytest.approx(statistics.median(r["samples_ns"]) / 1e6)
    assert set(r["stability"]) == {"stable", "warnings"}
    assert r["wall_s"] > 0


def test_worker_pins_openmp_threads() -> None:
    assert worker_env({"threads": 3})["OMP_NUM_THREADS"] == "3"


def test_timeout_is_a_failed_cell(tiny_onnx: Path) -> None:
    r = run_cell(
        {
            "path": str(tiny_onnx),
            "engine": "onnxruntime",
            "threads": 1,
            "min_iters": 1,
            "min_time_s": 60,
        },
        timeout=3,
    )
    assert r == {
        "ok": False,
        "stage": "timeout",
        "error": "no result after 3 s",
        "hint": "raise --timeout or lower --min-time",
    }


def test_crashing_worker_is_a_failed_cell(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Fatal: boom' >&2\nexit 139\n")
    fake.chmod(0o755)
    r = run_cell({"path": "x.onnx", "engine": "onnxruntime", "threads": 1}, python=str(fake))
    assert not r["ok"] and r["stage"] == "crash"
    assert r["error"] == "worker exited with code 139: Fatal: boom"


def test_worker_reads_spec_file_and_keeps_stdout_clean(tiny_onnx: Path, tmp_path: Path) -> None:
    import subprocess

    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "path": str(tiny_onnx),
                "engine": "onnxruntime",
                "threads": 1,
                "warmup": 0,
                "min_iters": 3,
                "min_time_s": 0,
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "picozoo.bench.worker", str(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(out.stdout.splitlines()) == 1 and json.loads(out.stdout)["ok"] is True
