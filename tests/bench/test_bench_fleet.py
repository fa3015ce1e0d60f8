"""`picozoo bench --cluster`: a real Dask scheduler and real workers on loopback (each its own
process group, cache and --name; some with their own file:// mirror, one whose Python cannot
import onnxruntime), the real CLI benching across them: a model id that each machine pulls
from its own mirror (or fails to, or skips for want of the engine); a worker killed mid-run
leaves a failed cell naming it and the other machine's results; Ctrl-C or a killed client
leaves no cell process behind."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import run_cli

from picozoo.bench.records import Document

pytest.importorskip("distributed")

FAST = ("--threads", "1", "--warmup", "2", "--min-iters", "10", "--min-time", "0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process and everything it started (its process group), and reap it."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ)

    def start(self, names: list[str], envs: dict[str, dict[str, str]] | None = None) -> None:
        """The scheduler, and a worker per name, each with its own cache (``envs``: a
        worker's whole environment, its cache added)."""
        bindir = Path(sys.executable).parent
        self.procs["scheduler"] = _start(
            [str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-dashboard"],
            self.env, self.tmp / "scheduler.log",
        )  # fmt: skip
        for name in names:
            cache = self.tmp / f"cache-{name}"
            cache.mkdir()
            self.procs[name] = _start(
                [str(bindir / "dask"), "worker", self.address, "--name", name, "--nthreads", "1",
                 "--resources", "bench=1", "--host", "127.0.0.1", "--no-dashboard"],
                {**(envs or {}).get(name, self.env), "PICOZOO_CACHE": str(cache)},
                self.tmp / f"{name}.log",
            )  # fmt: skip
        self.wait_for(names)

    def wait_for(self, names: list[str], timeout: float = 60.0) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=timeout, set_as_default=False) as c:
            while time.monotonic() < deadline:
                got = {w["name"] for w in c.scheduler_info(n_workers=-1)["workers"].values()}
                if set(names) <= got:
                    return
                time.sleep(0.2)
        logs = {p.name: p.read_text()[-2000:] for p in self.tmp.glob("*.log")}
        raise AssertionError(f"workers {names} did not join: {logs}")

    def kill(self, name: str) -> None:
        _stop(self.procs.pop(name))

    def close(self) -> None:
        for name in [n for n in self.procs if n != "scheduler"] + ["scheduler"]:
            if name in self.procs:
                _stop(self.procs.pop(name))


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start(["board-a", "laptop-b"])
        yield c
    finally:
        c.close()


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PICOZOO_CACHE": str(tmp / "client-cache")}


@pytest.mark.slow
def test_fleet_bench_two_machines_one_document(cluster: Cluster, tiny_onnx: Path) -> None:
    r = run_cli("bench", str(tiny_onnx), *FAST, "--cluster", cluster.address, "--format", "json",
                env=_env(cluster.tmp))  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = Document.from_json(json.loads(r.stdout), "stdout")
    assert sorted(c.machine.name for c in doc.cells if c.machine) == ["board-a", "laptop-b"]
    assert all(c.ok for c in doc.cells), [c.failure for c in doc.cells]
    assert all(c.machine and c.machine.environment.logical_cores >= 1 for c in doc.cells)
    assert any(n.startswith("machine board-a (dask worker tcp://127.0.0.1:") for n in doc.notes)
    # the saved document reads and writes back byte-identical
    assert Document.from_json(json.loads(r.stdout)).to_json() == r.stdout
    # --on picks one machine; the Markdown has a latency column per machine
    r = run_cli("bench", str(tiny_onnx), *FAST, "--on", "laptop-b", "--format", "md",
                env={**_env(cluster.tmp), "PICOZOO_CLUSTER": cluster.address})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "laptop-b (ms)" in r.stdout and "board-a" not in r.stdout
    r = run_cli("bench", str(tiny_onnx), *FAST, "--cluster", cluster.address, "--on", "nope",
                env=_env(cluster.tmp))  # fmt: skip
    assert r.returncode == 2 and "nope" in r.stderr


@pytest.mark.slow
def test_fleet_worker_killed_mid_run(cluster: Cluster, tiny_onnx: Path) -> None:
    """board-a is killed while it measures its first cell: that cell fails naming it, the
    laptop's cells complete."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "picozoo", "bench", str(tiny_onnx), "--threads", "1",
         "--threads", "2", "--warmup", "2", "--min-iters", "10", "--min-time", "3",
         "--cluster", cluster.address, "--format", "json"],
        env=_env(cluster.tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = ""
        while "bench machine(s)" not in first:  # the cells are being submitted
            first = proc.stderr.readline()
            assert first, "bench ended before it reached the cluster"
        time.sleep(1.5)  # both machines are in their first cell (each >= 3 s)
        cluster.kill("board-a")
        out, err = proc.communicate(timeout=120)
        err = first + err
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    doc = Document.from_json(json.loads(out), "stdout")
    by = {(c.machine.name if c.machine else "", c.threads): c for c in doc.cells}
    assert by[("laptop-b", 1)].ok and by[("laptop-b", 2)].ok
    failed = [c for (m, _), c in by.items() if m == "board-a" and not c.ok]
    assert failed and all("board-a" in (c.failure.error if c.failure else "") for c in failed)
    assert "board-a" in err
    from picozoo.bench.report import render

    md = render(doc, "md")  # one table: a latency column per machine, the failure named
    assert "board-a (ms)" in md and "laptop-b (ms)" in md and "left the cluster" in md


@pytest.mark.slow
def test_fleet_unreachable_scheduler_exit_4(tiny_onnx: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = run_cli("bench", str(tiny_onnx), *FAST, "--cluster", f"tcp://127.0.0.1:{port}",
                env=_env(tmp_path))  # fmt: skip
    assert r.returncode == 4, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], r.stderr
    assert "measuring" not in r.stderr and time.monotonic() - t0 < 60


def _fleet_doc(doc: Document) -> Document:
    """``doc`` as if its cells had been measured by machines board-a (the first half) and
    laptop-b, the last one killed on board-a."""
    import dataclasses

    from picozoo.bench.records import Failure, Machine

    env = doc.environment
    cells = []
    for i, c in enumerate(doc.cells):
        name = "board-a" if i % 2 == 0 else "laptop-b<i>"  # a name is escaped in Markdown
        cells.append(dataclasses.replace(c, machine=Machine(name, env)))
    cells[-1] = dataclasses.replace(
        cells[-1], result=Failure("cluster", "machine board-a left the cluster (killed)")
    )
    return dataclasses.replace(doc, cells=tuple(cells))


@pytest.mark.slow
def test_machine_field_round_trips_and_old_documents_are_unchanged(
    measured_doc: Document,
) -> None:
    old = Path(__file__).parents[1] / "data" / "bench-v0.1-standin-s416.json"
    text = old.read_text()
    assert Document.from_json(json.loads(text)).to_json() == text
    fleet = _fleet_doc(measured_doc)
    saved = fleet.to_json()
    assert '"machine": {' in saved and '"machine": {' not in measured_doc.to_json()
    again = Document.from_json(json.loads(saved))
    assert again == fleet and again.to_json() == saved


@pytest.mark.slow
def test_markdown_has_a_latency_column_per_machine(measured_doc: Document) -> None:
    pytest.importorskip("pandas")
    from support.bench_helpers import md_tables

    from picozoo.bench.report import MACHINES_CAPTION, render

    md = render(_fleet_doc(measured_doc), "md")
    assert MACHINES_CAPTION in md
    (table,) = [t for t in md_tables(md) if t[0][-1].endswith("(ms)") and "board-a" in t[0][-2]]
    assert table[0][-2:] == ["board-a (ms)", "laptop-b&lt;i> (ms)"]
    assert any("left the cluster" in c for row in table[1:] for c in row)
    assert all(len(row) == len(table[0]) for row in table)


@pytest.mark.slow
def test_cells_of_different_machines_are_never_compared(measured_doc: Document) -> None:
    """Two machines, two engines each: the cross-engine table groups by machine (a Machine
    column, a 1.00x per machine) and each machine gets its own "Fastest on NAME" line; a slow
    machine's cells are not called slower than another machine's."""
    pytest.importorskip("pandas")
    import dataclasses

    from support.bench_helpers import md_tables

    from picozoo.bench.records import Machine
    from picozoo.bench.report import ENGINES_CAPTION, render, to_csv

    [cell] = [c for c in measured_doc.cells if c.ok and c.model_id and c.threads == 1]
    assert cell.ok and cell.stats is not None
    slow = cell.stats.median_ms * 3  # laptop-b's cells are all slower than board-a's

    def on(machine: str, engine: str, factor: float) -> Any:
        stats = dataclasses.replace(cell.stats, median_ms=cell.stats.median_ms * factor)
        return dataclasses.replace(
            cell,
            engine=engine,
            machine=Machine(machine, measured_doc.environment),
            result=dataclasses.replace(cell.result, stats=stats),
        )

    doc = dataclasses.replace(
        measured_doc,
        cells=(
            on("board-a", "onnxruntime", 1.0),
            on("board-a", "openvino", 1.5),
            on("laptop-b", "onnxruntime", 4.0),
            on("laptop-b", "openvino", 3.0),
        ),
    )
    md = render(doc, "md")
    [table] = [t for t in md_tables(md) if "vs fastest" in t[0]]
    assert ENGINES_CAPTION in md and table[0][2] == "Machine"
    by_machine: dict[str, list[str]] = {}
    for row in table[1:]:
        by_machine.setdefault(row[2], []).append(row[-1])
    assert by_machine == {"board-a": ["1.00x", "1.50x"], "laptop-b": ["1.00x", "1.33x"]}
    main = md_tables(md)[0]  # the upstream-style table: every latency names its machine
    where = main[0].index("Machine")
    assert "Latency" in main[0][where - 1]
    assert [row[where] for row in main[1:]] == ["board-a", "board-a", "laptop-b", "laptop-b"]
    assert "Machine" in render(doc, "table") and "laptop-b" in render(doc, "html")
    assert "Fastest on board-a:" in md and "Fastest on laptop-b:" in md
    assert "Fastest on this machine" not in md
    fastest_b = next(ln for ln in md.splitlines() if "Fastest on laptop-b" in ln)
    assert "openvino" in fastest_b.split(":", 2)[2] and f"{slow:.2f}" in fastest_b
    machines = {line.split(",")[-1] for line in to_csv(doc).splitlines()[1:]}
    assert machines == {"board-a", "laptop-b"}
    from picozoo.bench.plot import series_from_rows
    from picozoo.bench.rows import report_rows

    names = {s["name"].split(":")[0] for s in series_from_rows(report_rows(doc), "fleet")}
    assert names == {"board-a", "laptop-b"}  # the plot's series are per machine too


# -- machines that prepare their own cells: separate caches and mirrors ----------------------


def _publish_tiny(tmp: Path, mirror: Path) -> Path:
    """A small dynamic-input ONNX published as picodet-s-416's ``onnx-nopp`` on ``mirror``
    (the registry pins no sha256 for it: any file is accepted as upstream's)."""
    from support.artifacts import publish
    from support.bench_helpers import build_conv_onnx

    from picozoo.hub.registry import load_registry

    made = tmp / "tiny-dynamic.onnx"
    if not made.exists():
        build_conv_onnx(made, dynamic=True, channels=8, layers=2)
    return publish(load_registry().get("picodet-s-416").artifact("onnx-nopp"), made, mirror)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three machines, each with its own cache and its own file:// mirror: node-a's mirror
    has picodet-s-416's ONNX, node-b's is empty, node-c's has it but node-c's Python cannot
    import onnxruntime (as if ``[bench]`` were not installed there)."""
    from support.bench_helpers import blocked_env

    tmp = tmp_path_factory.mktemp("hosts")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    envs = {}
    for name in ("node-a", "node-b", "node-c"):
        mirror = tmp / f"mirror-{name}"
        mirror.mkdir()
        if name != "node-b":
            _publish_tiny(tmp, mirror)
        envs[name] = {**base, "PICOZOO_MIRROR": mirror.as_uri()}
    envs["node-c"] = blocked_env(tmp, ["onnxruntime"], envs["node-c"])
    c = Cluster(tmp)
    c.env = base
    try:
        c.start(["node-a", "node-b", "node-c"], envs)
        yield c
    finally:
        c.close()


def _client_env(tmp: Path) -> dict[str, str]:
    """The client's: its own empty cache and an empty mirror (it can pull nothing)."""
    (tmp / "client-mirror").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return {**base, "PICOZOO_CACHE": str(tmp / "client-cache"),
            "PICOZOO_MIRROR": (tmp / "client-mirror").as_uri()}  # fmt: skip


@pytest.mark.slow
def test_fleet_model_id_each_machine_pulls_from_its_own_mirror(hosts: Cluster) -> None:
    """``bench picodet-s-416 --cluster``: node-a pulls from its mirror into its cache and
    measures; node-b's mirror lacks the file: its cell fails with the reason; node-c has no
    ONNX Runtime: its cell is skipped with the install command. The client pulls nothing."""
    tmp = hosts.tmp
    r = run_cli("bench", "picodet-s-416", "--engine", "onnxruntime", *FAST, "--cluster",
                hosts.address, "--format", "json", env=_client_env(tmp))  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = Document.from_json(json.loads(r.stdout), "stdout")
    by = {c.machine.name: c for c in doc.cells if c.machine}
    assert sorted(by) == ["node-a", "node-b", "node-c"]
    a, b, c = by["node-a"], by["node-b"], by["node-c"]
    assert a.ok and a.model_id == "picodet-s-416" and a.origin == "upstream"
    assert a.source and a.source.startswith(str(tmp / "cache-node-a"))
    assert a.artifact_sha256 and a.input_size == (416, 416)
    assert (a.provenance or {}).get("artifact") == "onnx-nopp"
    assert b.failure and b.failure.stage == "prepare" and not b.failure.skipped
    assert "picodet_s_416_coco_lcnet.onnx" in b.failure.error, b.failure
    assert c.failure and c.failure.skipped
    assert "pip install 'picozoo[bench]'" in c.failure.error and "node-c" in c.failure.error
    # each machine described itself; nothing was pulled into the client's cache
    assert a.machine and a.machine.environment.versions.get("onnxruntime")
    assert not any((tmp / "client-cache").rglob("*.onnx"))
    assert not any((tmp / "cache-node-b").rglob("*.onnx"))
    assert "node-b: picodet-s-416 / onnxruntime / 1 thr: FAILED" in r.stderr
    assert "node-c: picodet-s-416 / onnxruntime / 1 thr: skipped" in r.stderr
    from picozoo.bench.report import render

    md = render(doc, "md")
    assert "skipped: onnxruntime is not installed" in md and "node-a (ms)" in md
    # once node-b's own mirror has the file, node-b pulls it into its own cache
    _publish_tiny(tmp, tmp / "mirror-node-b")
    r = run_cli("bench", "picodet-s-416", *FAST, "--cluster", hosts.address, "--on", "node-b",
                "--format", "json", env=_client_env(tmp))  # fmt: skip
    assert r.returncode == 0, r.stderr
    (cell,) = Document.from_json(json.loads(r.stdout), "stdout").cells
    assert cell.ok and cell.source and cell.source.startswith(str(tmp / "cache-node-b"))
    # a cell runs without what Dask's nanny puts in every worker process (a local cell has
    # none of it); the worker's own variables stay
    from distributed import Client

    from picozoo.bench.fleet import bench_workers, cell_environ

    with Client(hosts.address, timeout=30, set_as_default=False) as client:
        (node,) = bench_workers(client, ["node-a"])
        worker = client.run(lambda: dict(os.environ), workers=[node.address])[node.address]
        cell_env = client.run(cell_environ, workers=[node.address])[node.address]
    assert worker.get("MALLOC_TRIM_THRESHOLD_") == "65536" and worker["MKL_NUM_THREADS"] == "1"
    assert "MALLOC_TRIM_THRESHOLD_" not in cell_env and "MKL_NUM_THREADS" not in cell_env
    assert cell_env["PICOZOO_CACHE"] == str(tmp / "cache-node-a")
    # an unknown model id is refused here, before anything is submitted
    r = run_cli("bench", "picodet-s-41", "--cluster", hosts.address, env=_client_env(tmp))
    assert r.returncode == 2 and "picodet-s-416" in r.stderr and "bench machine" not in r.stderr


def _cell_processes(c: Cluster) -> list[Any]:
    """The bench cell processes (``python -m picozoo.bench.worker``) the workers started."""
    import psutil

    out = []
    for name, proc in c.procs.items():
        if name == "scheduler":
            continue
        for p in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "picozoo.bench.worker" in " ".join(p.cmdline()):
                    out.append(p)
    return out


@pytest.mark.slow
def test_fleet_ctrl_c_cancels_every_cell(hosts: Cluster, tiny_onnx: Path) -> None:
    """SIGINT to the client while the machines measure: exit 130, every cell cancelled, no
    cell process left on the machines, which then bench again at once."""
    env = _client_env(hosts.tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "picozoo", "bench", str(tiny_onnx), "--threads", "1",
         "--threads", "2", "--warmup", "2", "--min-iters", "10", "--min-time", "30",
         "--cluster", hosts.address, "--on", "node-a", "--on", "node-b"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_cell_processes(hosts)) < 2:  # both machines measure their first cell
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and out == ""
    deadline = time.monotonic() + 10
    while _cell_processes(hosts) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _cell_processes(hosts) == []
    r = run_cli("bench", str(tiny_onnx), *FAST, "--cluster", hosts.address, "--on", "node-a",
                "--format", "json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Document.from_json(json.loads(r.stdout), "stdout").cells[0].ok
    # a client killed outright (no Ctrl-C handler runs): the scheduler drops its cells, and
    # the machine kills the cell it was measuring
    proc = subprocess.Popen(
        [sys.executable, "-m", "picozoo", "bench", str(tiny_onnx), "--threads", "1",
         "--min-time", "30", "--cluster", hosts.address, "--on", "node-a"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _cell_processes(hosts):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while _cell_processes(hosts) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _cell_processes(hosts) == []


@pytest.mark.slow
def test_fleet_result_lost_with_its_machine_never_hangs(cluster: Cluster) -> None:
    """A machine frozen, then killed, after its cell finished and before the client fetched
    the result: fetching it never blocks the run (each look waits a bounded time), and once
    the machine is gone its cell fails naming it (the result was lost with it)."""
    from distributed import Client

    from picozoo.bench.fleet import RESULT_TIMEOUT_S, _outcome, bench_workers
    from picozoo.bench.records import Failure

    with Client(cluster.address, timeout=30, set_as_default=False) as c:
        (w,) = bench_workers(c, ["board-a"])
        fut = c.submit(sum, [1, 2], workers=[w.address], allow_other_workers=False, pure=False)
        deadline = time.monotonic() + 30
        while fut.status != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(cluster.procs["board-a"].pid, signal.SIGSTOP)  # holds the result, answers not
        assert _bounded(functools.partial(_outcome, fut, w, True), RESULT_TIMEOUT_S + 3) is None
        cluster.kill("board-a")  # still in the cluster above: looked again now
        got = None
        while got is None:
            assert time.monotonic() < deadline + 60, "the lost result was never reported"
            alive = w.address in c.scheduler_info(n_workers=-1)["workers"]
            got = _bounded(functools.partial(_outcome, fut, w, alive), RESULT_TIMEOUT_S + 3)
            time.sleep(0.1)
    assert isinstance(got, Failure) and "board-a left the cluster" in got.error


def _bounded(call: Any, seconds: float) -> Any:
    """``call()``, which must return within ``seconds`` (run in a daemon thread, so a call
    that hangs fails the test instead of hanging it)."""
    import threading

    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(call()), daemon=True)
    t.start()
    t.join(seconds)
    assert box, f"the call did not return within {seconds} s"
    return box[0]
