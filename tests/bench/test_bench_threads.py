"""Threads and cores: the default thread count is the cores this process may use (its CPU
affinity mask, a cgroup quota), and thread counts above it are said on stderr, flagged in the
result and noted in every report format. The CLI runs pinned to one CPU (like ``taskset -c
0``), so its workers really are oversubscribed."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.bench_helpers import md_tables, run_cli

from picozoo.bench.records import load_document
from picozoo.bench.report import render
from picozoo.threads import cpu_quota

FAST = ("--min-iters", "10", "--min-time", "0", "--warmup", "1")
WARNING = (
    "warning: 2 threads exceed the 1 core this process may use (CPU affinity / cgroup quota): "
    "those cells measure threads waiting for a core, not the model; their ratio to upstream's "
    "latency is not shown"
)


def test_usable_cores_follow_the_affinity_mask() -> None:
    code = (
        "import os; from picozoo.threads import usable_cores; "
        "os.sched_setaffinity(0, {0}); print(usable_cores())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_cgroup_quota_is_rounded_up_and_max_means_none() -> None:
    assert cpu_quota("50000 100000") == 1  # half a core: 1 thread
    assert cpu_quota("250000 100000\n") == 3
    assert cpu_quota("max 100000") is None and cpu_quota("-1 100000") is None


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a machine with 2+ CPUs")
def test_default_thread_count_is_the_usable_cores_not_cpu_count(tiny_onnx: Path) -> None:
    r = run_cli("bench", str(tiny_onnx), *FAST, "--report", "json", one_cpu=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [c["threads"] for c in doc["cells"]] == [1]  # not os.cpu_count()
    assert doc["environment"]["usable_cores"] == 1
    assert "warning" not in r.stderr and "oversubscribed" not in doc["cells"][0]


@pytest.mark.slow
def test_oversubscribed_threads_are_said_and_noted_in_every_format(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "r.json"
    r = run_cli(
        "bench",
        str(tiny_onnx),
        "--threads",
        "1",
        "--threads",
        "2",
        *FAST,
        "--report",
        "json",
        "--out",
        str(saved),
        one_cpu=True,
    )
    assert r.returncode == 0, r.stderr
    assert WARNING in r.stderr.splitlines()
    data = json.loads(saved.read_text())
    assert [c.get("oversubscribed", False) for c in data["cells"]] == [False, True]
    doc = load_document(saved)
    footnote = (
        "(*) 2 threads exceed the 1 core this process may use (CPU affinity / cgroup quota): "
        "those cells measure threads waiting for a core, not the model; their measured/claimed "
        "ratio is not shown."
    )
    md = render(doc, "md")
    main, scaling = md_tables(md)
    assert [r[main[0].index("Threads")] for r in main[1:]] == ["1", "2 (*)"]
    assert scaling[1][4].endswith(" (*)") and not scaling[1][3].endswith(" (*)")
    assert f"- {footnote}" in md.splitlines()
    assert footnote in render(doc, "html") and footnote in render(doc, "table").replace("\n", "")
    rows = list(csv.DictReader(io.StringIO(render(doc, "csv"))))
    assert [(r["threads"], r["oversubscribed"]) for r in rows] == [("1", "False"), ("2", "True")]
