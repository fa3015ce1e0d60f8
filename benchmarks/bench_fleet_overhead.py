"""What does measuring a cell on a Dask cluster machine cost, against measuring it locally?

Run:  python benchmarks/bench_fleet_overhead.py [--model MODEL|PATH] [--rounds 6] [--threads 1]

On this machine the script starts a Dask scheduler and one bench worker on loopback, exactly
as the README's fleet run does (``dask scheduler`` and ``dask worker tcp://127.0.0.1:PORT --name
local-worker --nthreads 1 --resources bench=1``; the worker inherits this environment, so it
has the same cache and mirror), then benches the same model, engine and thread count through
``picozoo bench`` twice per round, each in a process of its own as a user runs it, alternated
(local first on even rounds, cluster first on odd ones), side by side in one run:

* local: ``picozoo bench MODEL --format json``: the cell in a fresh process started by it;
* cluster: the same with ``--cluster ADDRESS``: the worker resolves the model and runs the
  cell in a fresh process started by the Dask worker.

The model (``--model``, default: a few Conv layers built here at 1x3x96x96) is what ``picozoo
bench`` takes: a model id (pulled from ``PICOZOO_MIRROR`` into ``PICOZOO_CACHE``, e.g. the
stand-in of ``python tests/support/demo_mirror.py DIR`` with ``PICOZOO_MIRROR=file://DIR``) or
a file. Before each measurement it waits (up to --max-wait s) until the CPUs are idle.

It prints each side's median latency (every sample of every round pooled), their ratio
(cluster / local; goal: within 1.00 +/- 0.05, exit code 1 if not), the median and range of the
per-round ratios, and the end-to-end wall time of a one-cell ``picozoo bench`` on each side
(the cluster's includes connecting to the scheduler; its model is prepared by the worker, the
local one's by the command itself): the dispatch overhead.

Measured here (AMD EPYC, 2 cores shared with other work; the PicoDet-S-416 stand-in, ONNX
Runtime, 1 thread, 8 rounds): local 20.43 ms, cluster 20.66 ms, ratio 1.011 (per-round median
1.017); a one-cell command took 4.15 s locally and 3.69 s on the cluster.
``--quick``: a smoke run (1 round, 0.1 s, no waiting; exit 0 whatever the ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench_harness import add_pacing_options, cpu_line, small_model, wait_quiet

TOLERANCE = 0.05
SIDES = ("local", "cluster")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _dask() -> list[str]:
    """The ``dask`` command of this Python's environment."""
    beside = Path(sys.executable).parent / "dask"
    found = str(beside) if beside.exists() else shutil.which("dask")
    if found is None:
        raise SystemExit("the dask command is not installed: pip install 'picozoo[fleet]'")
    return [found]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_cluster(logs: Path, name: str = "local-worker") -> Iterator[str]:
    """A scheduler and one bench worker on loopback (each in its own process group, killed on
    exit); yields the scheduler's address once the worker has joined."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    commands = [
        [*_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        [*_dask(), "worker", address, "--name", name, "--nthreads", "1", "--resources",
         "bench=1", "--host", "127.0.0.1", "--no-dashboard"],
    ]  # fmt: skip  # fmt: skip
    procs = []
    try:
        for i, cmd in enumerate(commands):
            with (logs / f"dask-{i}.log").open("wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))
        with Client(address, timeout=60, set_as_default=False) as client:
            deadline = time.monotonic() + 60
            while not client.scheduler_info(n_workers=-1)["workers"]:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the worker did not join: see {logs}")
                time.sleep(0.2)
        yield address
    finally:
        for p in reversed(procs):
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def one_cell(
    model: str, args: argparse.Namespace, cluster: str | None
) -> tuple[list[float], float]:
    """The cell's latency samples (ms) and the command's end-to-end wall time (s): ``picozoo
    bench`` run as a user runs it, in a process of its own (``--cluster`` for the cluster)."""
    from picozoo.bench.records import Document

    cmd = [sys.executable, "-m", "picozoo", "bench", model, "--engine", args.engine,
           "--threads", str(args.threads), "--warmup", str(args.warmup), "--min-iters",
           str(args.min_iters), "--min-time", str(args.min_time), "--format", "json"]  # fmt: skip
    if cluster:
        cmd += ["--cluster", cluster]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    (cell,) = Document.from_json(json.loads(done.stdout), "picozoo bench").cells
    m = cell.measured
    if m is None:
        raise SystemExit(f"the {'cluster' if cluster else 'local'} cell failed: {cell.failure}")
    return [ns / 1e6 for ns in m.samples_ns], wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", help="a model id or file [default: a small ONNX built here]")
    ap.add_argument("--engine", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=1, help="same for both sides [default: 1]")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--warmup", default="auto")
    ap.add_argument("--min-iters", type=int, default=50)
    ap.add_argument("--min-time", type=float, default=2.0)
    add_pacing_options(ap)
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.min_iters, args.min_time, args.max_wait = 1, 5, 0.1, 0.0
        args.warmup = "2"
    tmp = Path(tempfile.mkdtemp(prefix="picozoo-fleet-overhead-"))
    try:
        model = args.model or str(small_model(tmp / "small_conv.onnx"))
        print(cpu_line(args.threads, args.rounds, args.min_time))
        print(f"model: {model}; engine {args.engine}; each side: one `picozoo bench` of one cell")
        samples: dict[str, list[float]] = {s: [] for s in SIDES}
        walls: dict[str, list[float]] = {s: [] for s in SIDES}
        per_round: list[float] = []
        noisy = 0
        with local_cluster(tmp) as address:
            for i in range(args.rounds):
                order = SIDES if i % 2 == 0 else SIDES[::-1]
                medians = {}
                for side in order:
                    quiet, _busy = wait_quiet(args.quiet_limit, args.max_wait)
                    noisy += not quiet
                    got, wall = one_cell(model, args, address if side == "cluster" else None)
                    samples[side] += got
                    walls[side].append(wall)
                    medians[side] = statistics.median(got)
                    say(
                        f"round {i + 1}/{args.rounds} {side}: median {medians[side]:.3f} ms, "
                        f"run {wall:.2f} s"
                    )
                per_round.append(medians["cluster"] / medians["local"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    local, cluster = (statistics.median(samples[s]) for s in SIDES)
    ratio = cluster / local
    ok = abs(ratio - 1.0) <= TOLERANCE
    for s in SIDES:
        print(
            f"{s:8s} median {statistics.median(samples[s]):8.3f} ms over {len(samples[s])} "
            f"samples | one-cell run {statistics.median(walls[s]):6.2f} s (median wall)"
        )
    print(
        f"ratio cluster/local of the medians {ratio:.3f} "
        f"{'OK' if ok else 'OUT OF 1.00 +/- 0.05'} | median of per-round ratios "
        f"{statistics.median(per_round):.3f} (range {min(per_round):.3f}..{max(per_round):.3f})"
        f" | dispatch overhead of a one-cell run "
        f"{statistics.median(walls['cluster']) - statistics.median(walls['local']):+.2f} s"
        + (f" | {noisy} measurement(s) started on a busy machine" if noisy else "")
    )
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
