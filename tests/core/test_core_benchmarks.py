"""Every script in benchmarks/ runs from a user's install (issue 18, item 13): ``pip install
'.[all]'`` has no pytest, no scikit-image, no pycocotools, no rapid-layout. Each script runs in a
subprocess whose imports of those fail (a ``sitecustomize`` on PYTHONPATH, as if they were not
installed), with ``--help`` and then briefly for real (its ``--quick`` mode or smallest
options)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.bench_helpers import blocked_env

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
#: packages of the test environment that ``picozoo[all]`` does not install
NOT_IN_ALL = ["pytest", "_pytest", "skimage", "pycocotools", "rapid_layout", "xdist"]

#: a brief real run of each script: (arguments, whether it needs Paddle and the converters)
RUNS: dict[str, tuple[list[str], bool]] = {
    "attack_suite.py": (["-k", "HTML page answered 200"], False),
    "bench_startup.py": (["--repeat", "1"], False),
    "bench_pull.py": (["--size-mb", "2", "--repeats", "1"], False),
    "bench_harness.py": (["--quick"], False),
    "bench_convert.py": (["--repeat", "1", "--model", "legacy-sf"], True),
    "bench_eval.py": (["--quick", "--threads", "1"], True),
    "bench_engines.py": (["--quick"], True),
    "bench_paddle_upstream.py": (["--quick"], True),
    "bench_fleet_overhead.py": (["--quick"], False),
}


def _run(tmp_path: Path, script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = blocked_env(tmp_path, NOT_IN_ALL)
    env["PICOZOO_CACHE"] = str(tmp_path / "cache")
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        env=env,
        cwd=tmp_path,  # not the repository: tests/ is on the path only if the script adds it
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_script_is_run_here() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(RUNS)


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The shim really hides what [all] does not install (else the tests below prove nothing)."""
    env = blocked_env(tmp_path, NOT_IN_ALL)
    code = "import importlib.util as u; import pytest"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "No module named 'pytest'" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(RUNS))
def test_help(script: str, tmp_path: Path) -> None:
    r = _run(tmp_path, script, "--help", timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usage:" in r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(RUNS))
def test_brief_run(script: str, tmp_path: Path) -> None:
    args, heavy = RUNS[script]
    if heavy:
        for module in ("paddle", "paddle2onnx", "onnxsim", "onnxruntime"):
            pytest.importorskip(module)
    r = _run(tmp_path, script, *args, timeout=900)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert "Traceback" not in r.stderr
    assert r.stdout.strip()  # it reported something
