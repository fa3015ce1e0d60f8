"""picozoo's Paddle runtime side by side with upstream's own deploy predictor loop.

The Paddle cell is the reference every ratio in a bench report is taken against, so it must run
Paddle Inference as PaddleDetection runs it (issue 18, item 12). Two persistent child
processes load the same model with the same threads, then take turns (alternated rounds, the
order flipped every round, never both at once):

* picozoo: ``picozoo.runtime.load("paddle", model, threads=N)`` and ``runtime.run(feeds)``,
  the call a bench cell times (inputs bound, run, every output copied out);
* upstream: PaddleDetection's ``deploy/python/infer.py``. Built in: a re-implementation of its
  ``load_predictor`` (device CPU, ``--enable_mkldnn True``: CPU math threads = N, MKLDNN cache
  capacity 10, MKLDNN on, glog info off, memory optimisation on, feed/fetch ops off) and of
  ``DetectorPicoDet.predict`` (the timed call: ``predictor.run()``, then per output
  ``get_output_handle(...).copy_to_cpu()``), its inputs copied in once before timing as its
  ``preprocess`` does. With ``--upstream-dir PATH`` (a PaddleDetection checkout, never
  committed here) upstream's own ``infer.py`` is imported from ``PATH/deploy/python`` and its
  ``Detector``/``DetectorPicoDet`` (its ``load_predictor``) and ``predict()`` are timed.

Before each side's turn the parent pauses ``--settle`` seconds (0.3): Paddle's Intel OpenMP
threads keep spinning 0.2 s (``KMP_BLOCKTIME``) after their work, which took a core from the
side that ran next. The rounds are split between two pairs of children started in opposite
orders (the child started first ran ~3% slower here even with the same code on both sides);
``--calibrate`` runs upstream's loop on both sides, so its ratio is the method's own bias
(ideally 1.00x).

Both get the bench's seeded input (``picozoo.bench.worker.make_input``). Each round times
``--iters`` calls per side (``perf_counter_ns``, garbage collection paused on both sides);
the speed ratio of a round is upstream's median / picozoo's median (> 1: picozoo faster), and
the result is the median of the rounds. The same is done with each call's CPU time (the
process's, all threads), which other processes' load disturbs far less than wall time. The
upstream child also times bare
``predictor.run()`` calls (no output copies: upstream develop's ``--run_benchmark`` loop,
whose ``paddle.device.cuda.synchronize()`` fails on a CPU build of Paddle) as a lower bound.
Both Configs are read back (``picozoo.runtime.paddle.config_settings``) and compared.

The model: the PicoDet-S-416 stand-in without post-processing (``legacy-demo416-nopp`` of
``tests/support/paddle_models.py``: PicoDet-S-416's parameters and FLOPs, random weights),
or ``--model-dir DIR``.

Usage: python benchmarks/bench_paddle_upstream.py [--threads 1 2] [--rounds 40] [--iters 5]
       [--upstream-dir PATH] [--model-dir DIR] [--quick] [--calibrate]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1] / "tests"
STANDIN = "legacy-demo416-nopp"


# ---------------------------------------------------------------------------------------------
# children: load once, warm up, then time rounds on request (one JSON line per answer)


def _feeds(names: list[str], size: int) -> dict[str, Any]:
    from picozoo.bench.worker import make_input

    shapes = {"scale_factor": [1, 2], "im_shape": [1, 2]}
    return {
        n: make_input(n, shapes.get(n, [1, 3, size, size]), "float32", (size, size), seed=k)
        for k, n in enumerate(names)
    }


def _picozoo_side(model: Path, threads: int, size: int) -> tuple[Any, dict[str, Any], Any]:
    import functools

    from picozoo.runtime import load

    rt = load("paddle", model, threads=threads)
    feeds = _feeds([i.name for i in rt.inputs()], size)
    info = {"settings": rt.settings, "version": rt.version}
    return functools.partial(rt.run, feeds), info, None


def _builtin_upstream(model: Path, threads: int) -> tuple[Any, Any]:
    """upstream's load_predictor (CPU, enable_mkldnn=True), written out; (predictor, config)."""
    from paddle.inference import Config, create_predictor

    prog = model / "model.pdmodel"
    if not prog.exists():
        prog = model / "model.json"
    config = Config(str(prog), str(model / "model.pdiparams"))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.set_mkldnn_cache_capacity(10)
    config.enable_mkldnn()
    config.disable_glog_info()
    config.enable_memory_optim()
    config.switch_use_feed_fetch_ops(False)
    return create_predictor(config), config


def _builtin_predict(predictor: Any) -> list[Any]:
    """upstream's DetectorPicoDet.predict(repeats=1), written out."""
    predictor.run()
    names = predictor.get_output_names()
    half = len(names) // 2
    scores, boxes = [], []
    for i in range(half):
        scores.append(predictor.get_output_handle(names[i]).copy_to_cpu())
        boxes.append(predictor.get_output_handle(names[i + half]).copy_to_cpu())
    return [scores, boxes]


def _import_upstream(upstream_dir: Path) -> Any:
    """upstream's deploy/python/infer.py as a module. Its preprocess.py imports imgaug for one
    lane-detection op (CULaneResize); without imgaug an empty stand-in module lets it import."""
    import importlib

    deploy = upstream_dir / "deploy" / "python"
    if not (deploy / "infer.py").is_file():
        raise SystemExit(f"error: {deploy / 'infer.py'} not found (--upstream-dir: a checkout)")
    try:
        importlib.import_module("imgaug.augmenters")
    except ImportError:
        augmenters = types.ModuleType("imgaug.augmenters")
        stub = types.ModuleType("imgaug")
        setattr(stub, "augmenters", augmenters)  # noqa: B010 (a module built here)
        sys.modules["imgaug"] = stub
        sys.modules["imgaug.augmenters"] = augmenters
    sys.path.insert(0, str(deploy))
    return importlib.import_module("infer")


def _upstream_side(
    model: Path, threads: int, size: int, upstream_dir: Path | None
) -> tuple[Any, dict[str, Any], Any]:
    import functools

    import paddle

    from picozoo.runtime.paddle import config_settings

    paddle.enable_static()  # as upstream's __main__ does
    if upstream_dir is None:
        predictor, config = _builtin_upstream(model, threads)
        predict = functools.partial(_builtin_predict, predictor)
        how = "built-in re-implementation of load_predictor + DetectorPicoDet.predict"
    else:
        import yaml

        infer = _import_upstream(upstream_dir)
        arch = yaml.safe_load((model / "infer_cfg.yml").read_text())["arch"]
        cls = infer.DetectorPicoDet if arch == "PicoDet" else infer.Detector
        det = cls(str(model), device="CPU", cpu_threads=threads, enable_mkldnn=True)
        predictor, config = det.predictor, det.config
        predict = functools.partial(det.predict, repeats=1)
        how = f"{upstream_dir}/deploy/python/infer.py {cls.__name__} (its load_predictor)"
        if os.environ.get("FLAGS_enable_pir_api") == "0":  # noqa: SIM112 (Paddle's name)
            how += ", FLAGS_enable_pir_api=0 (so that its Config finds model.pdmodel)"
    feeds = _feeds(predictor.get_input_names(), size)
    for name, array in feeds.items():  # as upstream's preprocess: copied in once
        predictor.get_input_handle(name).copy_from_cpu(array)
    info = {
        "settings": config_settings(config),
        "version": paddle.__version__,
        "how": how,
    }
    return predict, info, predictor.run


def _time(call: Any, n: int) -> tuple[list[int], list[int]]:
    """Per call: wall time and this process's CPU time (every thread: Paddle's own included), ns.
    CPU time is what a call costs even when other processes take the cores (wall time then
    counts the waits)."""
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    wall, used = [], []
    gc.disable()
    try:
        for _ in range(n):
            t0, c0 = clock(), cpu()
            call()
            wall.append(clock() - t0)
            used.append(cpu() - c0)
    finally:
        gc.enable()
    return wall, used


def child(args: argparse.Namespace) -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever Paddle or upstream print goes to stderr
    sys.stdout = sys.stderr
    model, threads, size = Path(args.model_dir), args.threads[0], args.size
    if args.child == "picozoo":
        call, info, bare = _picozoo_side(model, threads, size)
    else:
        call, info, bare = _upstream_side(model, threads, size, args.upstream_dir)
    _time(call, args.warmup)
    proto.write(json.dumps({"ready": True, **info}) + "\n")
    for line in sys.stdin:
        n = int(line)
        if n <= 0:
            break
        answer: dict[str, Any] = dict(zip(("ns", "cpu_ns"), _time(call, n), strict=True))
        if bare is not None:
            answer["bare_ns"] = _time(bare, n)[0]
        proto.write(json.dumps(answer) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# parent


class Child:
    def __init__(self, side: str, args: argparse.Namespace, model: Path, threads: int) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side]
        cmd += ["--model-dir", str(model), "--threads", str(threads), "--size", str(args.size)]
        cmd += ["--warmup", str(args.warmup)]
        env = dict(os.environ)
        env.setdefault("GLOG_minloglevel", "2")
        if side == "upstream" and args.upstream_dir is not None:
            cmd += ["--upstream-dir", str(args.upstream_dir)]
            if (model / "model.pdmodel").exists():
                # upstream's Config(model_dir, "model") on Paddle >= 3 finds model.pdmodel only
                # with the old program API (otherwise it looks for model.json)
                env["FLAGS_enable_pir_api"] = "0"
        self.side = side
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.seek(0)
            tail = "\n".join(self.log.read().strip().splitlines()[-15:])
            raise SystemExit(f"error: the {self.side} child failed:\n{tail}")
        return dict(json.loads(line))

    def round(self, n: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.write("0\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def _ms(ns: list[int]) -> float:
    return statistics.median(ns) / 1e6


def _code(side: str, args: argparse.Namespace) -> str:
    """The code a side's child runs: its own, or upstream's on both sides with --calibrate
    (an A/A run: the ratio then measures the method's own bias, ideally 1.00x)."""
    return "upstream" if args.calibrate else side


def _round(got: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {
        "picozoo_ms": _ms(got["picozoo"]["ns"]),
        "upstream_ms": _ms(got["upstream"]["ns"]),
        "upstream_bare_run_ms": _ms(got["upstream"]["bare_ns"]),
        "picozoo_cpu_ms": _ms(got["picozoo"]["cpu_ns"]),
        "upstream_cpu_ms": _ms(got["upstream"]["cpu_ns"]),
    }


def measure(args: argparse.Namespace, model: Path, threads: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    rounds: list[dict[str, float]] = []
    infos: dict[str, dict[str, Any]] = {}
    # Two pairs of children, started in opposite orders, each for half the rounds: the child
    # started first was measured ~3% slower even when both sides ran the same code (--calibrate)
    for pair, first in enumerate(("picozoo", "upstream")):
        starts = (first, "upstream" if first == "picozoo" else "picozoo")
        kids = {side: Child(_code(side, args), args, model, threads) for side in starts}
        try:
            for r in range(pair * (args.rounds // 2), args.rounds if pair else args.rounds // 2):
                order = starts if r % 2 == 0 else starts[::-1]
                got = {}
                for side in order:
                    time.sleep(args.settle)  # the other side's OpenMP threads stop spinning
                    got[side] = kids[side].round(args.iters)
                rounds.append(_round(got))
                print(
                    f"  {threads} thr round {r + 1}/{args.rounds} ({first} started first): "
                    f"picozoo {rounds[-1]['picozoo_ms']:.2f} ms, "
                    f"upstream {rounds[-1]['upstream_ms']:.2f} ms",
                    file=sys.stderr,
                )
        finally:
            for kid in kids.values():
                kid.close()
        infos = {side: kid.info for side, kid in kids.items()}
    ratios = [x["upstream_ms"] / x["picozoo_ms"] for x in rounds]
    bare = [x["upstream_bare_run_ms"] / x["picozoo_ms"] for x in rounds]
    cpu = [x["upstream_cpu_ms"] / x["picozoo_cpu_ms"] for x in rounds]
    pz, up = infos["picozoo"], infos["upstream"]
    keys = sorted(set(up["settings"]) - {"use_gpu"})
    return {
        "threads": threads,
        "rounds": rounds,
        "picozoo_ms": statistics.median(x["picozoo_ms"] for x in rounds),
        "upstream_ms": statistics.median(x["upstream_ms"] for x in rounds),
        "upstream_bare_run_ms": statistics.median(x["upstream_bare_run_ms"] for x in rounds),
        "speed_ratio": statistics.median(ratios),
        "speed_ratio_range": [min(ratios), max(ratios)],
        "speed_ratio_vs_bare_run": statistics.median(bare),
        "picozoo_cpu_ms": statistics.median(x["picozoo_cpu_ms"] for x in rounds),
        "upstream_cpu_ms": statistics.median(x["upstream_cpu_ms"] for x in rounds),
        "cpu_ratio": statistics.median(cpu),
        "cpu_ratio_range": [min(cpu), max(cpu)],
        "config_differences": {
            k: [pz["settings"].get(k), up["settings"].get(k)]
            for k in keys
            if pz["settings"].get(k) != up["settings"].get(k)
        },
        "picozoo_settings": pz["settings"],
        "upstream_settings": up["settings"],
        "upstream": up["how"],
        "paddle": pz["version"],
        "load_average": load,
    }


def report(args: argparse.Namespace, model: str, results: list[dict[str, Any]]) -> None:
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"model: {model} (input 1x3x{args.size}x{args.size}); paddlepaddle {results[0]['paddle']}"
    )
    print(f"upstream: {results[0]['upstream']}")
    print(f"load average at the start {results[0]['load_average']:.2f} on {os.cpu_count()} cores")
    print(
        f"{args.rounds} alternated rounds x {args.iters} timed calls per side "
        f"(after {args.warmup} warm-up calls); ratio = upstream ms / picozoo ms (> 1: picozoo "
        "faster), median of the rounds' ratios; half the rounds with each side's child started "
        "first"
    )
    if args.calibrate:
        print("CALIBRATION (A/A): upstream's loop on both sides; the ratio is the method's bias")
    for r in results:
        lo, hi = r["speed_ratio_range"]
        print(
            f"threads {r['threads']}: picozoo {r['picozoo_ms']:.2f} ms, upstream predict() "
            f"{r['upstream_ms']:.2f} ms -> picozoo/upstream speed {r['speed_ratio']:.3f}x "
            f"(rounds {lo:.3f}-{hi:.3f}); upstream bare predictor.run() "
            f"{r['upstream_bare_run_ms']:.2f} ms ({r['speed_ratio_vs_bare_run']:.3f}x)"
        )
        lo, hi = r["cpu_ratio_range"]
        print(
            f"  CPU time per call (all threads): picozoo {r['picozoo_cpu_ms']:.2f} ms, upstream "
            f"{r['upstream_cpu_ms']:.2f} ms -> {r['cpu_ratio']:.3f}x (rounds {lo:.3f}-{hi:.3f})"
        )
        diff = r["config_differences"]
        if diff:
            same = "DIFFERENT: " + ", ".join(
                f"{k}: picozoo {a} / upstream {b}" for k, (a, b) in diff.items()
            )
        else:
            mine = r["picozoo_settings"]
            same = "identical: " + ", ".join(
                f"{k}={mine[k]}" for k in sorted(mine) if k in r["upstream_settings"]
            )
        print(f"  config (read back): {same}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="default: 1 2")
    p.add_argument("--rounds", type=int, default=40, help="alternated rounds (default 40)")
    p.add_argument(
        "--iters",
        type=int,
        default=5,
        help="timed calls per side per round (default 5: short "
        "rounds, so a burst of other load hits both sides alike)",
    )
    p.add_argument("--warmup", type=int, default=50, help="warm-up calls (upstream: 50)")
    p.add_argument("--size", type=int, default=416, help="input height and width (416)")
    p.add_argument("--model-dir", type=Path, help="a Paddle model folder (default: the stand-in)")
    p.add_argument("--upstream-dir", type=Path, help="a PaddleDetection checkout to import from")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument(
        "--settle",
        type=float,
        default=0.3,
        help="seconds of pause before each side's turn (default 0.3: Intel OpenMP's threads "
        "spin 0.2 s after their work, taking a core from the side that runs next)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="A/A run: upstream's loop on both sides (the method's own bias; ideally 1.00x)",
    )
    p.add_argument("--quick", action="store_true", help="1 thread, 3 rounds of 5 calls")
    p.add_argument("--child", choices=("picozoo", "upstream"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.threads, args.rounds, args.iters, args.warmup, args.settle = [1], 3, 5, 5, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="picozoo-bench-upstream-") as tmp:
        model = args.model_dir
        if model is None:
            sys.path.insert(0, str(TESTS))
            from support.paddle_models import build_models

            print(f"building the {STANDIN} stand-in ...", file=sys.stderr)
            model = build_models(Path(tmp), [STANDIN])[STANDIN]
        results = [measure(args, Path(model), n) for n in args.threads]
        report(args, STANDIN if args.model_dir is None else str(model), results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
