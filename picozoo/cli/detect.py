"""``picozoo infer`` and ``picozoo eval``: thin layers over :func:`picozoo.detect.infer` and
:func:`picozoo.detect.evaluate` (run a PicoDet on images, draw the boxes, print the
detections; COCO mAP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    MODEL_OR_PATH,
    App,
    FiniteFloat,
    bounded_threads,
    echo_json,
    format_option,
    info,
    store_options,
)


def engine_options(f: Any) -> Any:
    """``--engine``, ``--precision`` and ``--threads``."""
    from ..runtime.base import ENGINES

    f = click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        callback=bounded_threads,
        help="Engine threads (at most 4x the usable cores, at least 16).",
    )(f)
    f = click.option(
        "--precision",
        type=click.Choice(["fp32", "fp16", "bf16", "int8"]),
        default="fp32",
        show_default=True,
        help="Engine precision (openvino: bf16/fp16, mnn: fp16/int8, ncnn: fp16); what the "
        "engine computes in is read back and printed, one this CPU cannot run exits 13.",
    )(f)
    return click.option(
        "--engine",
        type=click.Choice(list(ENGINES)),
        default="onnxruntime",
        show_default=True,
        help="Inference engine (openvino, mnn, ncnn: converted from the ONNX first; lite: the "
        "x86 .nb of `convert --to lite`).",
    )(f)


def nms_options(f: Any) -> Any:
    """``--nms``, ``--iou`` and ``--conf``: which NMS decodes a no-post-processing model."""
    f = click.option("--conf", type=FiniteFloat(0, 1), default=None,
                     help="NMS score threshold [default: 0.025 (eval), 0.4 "
                     "(deploy)].")(f)  # fmt: skip
    f = click.option("--iou", type=FiniteFloat(0, 1, min_open=True), default=None,
                     help="NMS IoU threshold [default: 0.6 (eval), infer_cfg.yml's "
                     "(deploy)].")(f)  # fmt: skip
    return click.option(
        "--nms",
        type=click.Choice(["eval", "deploy"]),
        default="eval",
        show_default=True,
        help="eval: upstream's evaluation settings (as the model exported with NMS); deploy: "
        "as upstream's deploy/python/infer.py decodes (score > 0.4, boxes clipped).",
    )(f)


#: OpenCV (upstream's exact resizing, drawing) and COCO's evaluator: the [eval] extra
_CV2 = ("cv2", ("eval",), "opencv-python-headless")
_COCO_EVAL = ("faster_coco_eval", ("eval",), "faster-coco-eval")


def _require_extras(engine: str, *needs: Any) -> None:
    """Every package the command needs is installed, else exit 11 naming them all at once
    (before any download)."""
    from ..bench.engines import engine_needs
    from ..capture import quiet_import
    from ..errors import require_all

    require_all([*engine_needs(engine, onnxruntime_extra="eval"), *needs], load=quiet_import)


INFER_EPILOG = """\b
Example: picozoo infer picodet-s-416 dog.jpg street.jpg --out boxes/
Example: picozoo infer ./picodet_s_416_coco_lcnet_non_postprocess page.png --format json
Example: picozoo infer model.onnx page.png --config infer_cfg.yml --threshold 0.3
Example: picozoo infer picodet-s-416 photos/ 'more/*.png' --nms deploy --out boxes/
"""


@click.command("infer", epilog=INFER_EPILOG)
@click.argument("model", metavar=MODEL_OR_PATH)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@engine_options
@click.option("--threshold", type=FiniteFloat(0, 1), default=None,
              help="Keep detections scoring at least this (above it with --nms deploy) "
              "[default: infer_cfg.yml's draw_threshold, 0.5 upstream].")  # fmt: skip
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="infer_cfg.yml of a bare .onnx file.")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("output"), show_default=True,
              help="Where to write each image with its boxes drawn, and results.json "
              "(COCO results).")  # fmt: skip
@nms_options
@format_option("table", "json")
@store_options()
def infer_cmd(
    app: App,
    model: str,
    images: tuple[str, ...],
    engine: str,
    precision: str,
    threads: int,
    threshold: float | None,
    config: Path | None,
    out_dir: Path,
    nms: str,
    iou: float | None,
    conf: float | None,
    fmt: str,
) -> None:
    """Detect objects in IMAGEs with MODEL (a model id, a Paddle inference folder, or an
    .onnx file) and write each image with its boxes, class names and scores to --out.

    An IMAGE may be a folder (its image files) or a quoted glob ('imgs/*.jpg'; one that
    matches no image exits 2). Drawn images keep their input's format and name (<stem>.png,
    then <stem>-2.png...: none overwrites an input or another output); --out also gets
    results.json, the detections kept as COCO results (category_id: COCO's ids for COCO models,
    else the class index). Images above PICOZOO_MAX_PIXELS (100 MP) are refused from their
    header, before decoding.

    No-post-processing models are decoded with upstream's evaluation NMS (score 0.025, IoU
    0.6, top-k 1000, keep 100), then cut at --threshold (score >= it); --nms deploy decodes
    as upstream's deploy/python/infer.py (score > 0.4, infer_cfg.yml's IoU, boxes clipped;
    score > --threshold). Models exported with NMS run as they are. Times pre-processing,
    inference and post-processing per image (stderr).
    """
    _require_extras(engine, _CV2)
    from ..convert import convert
    from ..detect import infer

    report = infer(
        model, images, engine=engine, precision=precision, threads=threads, threshold=threshold,
        config=config, out_dir=out_dir, nms=nms, iou=iou, conf=conf, store=app.store,
        registry=app.registry, progress=info, convert=convert,
    )  # fmt: skip
    if fmt == "json":
        echo_json(report.rows)
    else:
        for r in report.rows:
            x, y, w, h = r["bbox"]
            click.echo(f"{r['image']}\t{r['category']}\t{r['score']:.3f}\t"
                       f"{x:.1f},{y:.1f},{w:.1f},{h:.1f}")  # fmt: skip
    info(report.timing_line())
    info(report.saved_line(out_dir))


EVAL_EPILOG = """\b
Example: picozoo eval picodet-s-416 --coco ~/data/coco
Example: picozoo eval picodet-s-416 --coco ~/data/coco --limit 500 --threads 2
Example: picozoo eval model.onnx --config infer_cfg.yml --coco pages/ --ann pages/ann.json
"""


@click.command("eval", epilog=EVAL_EPILOG)
@click.argument("model", metavar=MODEL_OR_PATH)
@click.option("--coco", "coco_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="COCO folder: val2017/ + annotations/instances_val2017.json, or the "
              "image folder of --ann.")  # fmt: skip
@click.option(
    "--ann",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="COCO-format annotation JSON [default: annotations/instances_val2017.json].",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images (by id).")
@engine_options
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="infer_cfg.yml of a bare .onnx file.",
)
@nms_options
@click.option("--save-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the detections as a COCO results file (the data set's "
              "category ids).")  # fmt: skip
@format_option("table", "json")
@store_options()
def eval_cmd(
    app: App,
    model: str,
    coco_dir: Path,
    ann: Path | None,
    limit: int | None,
    engine: str,
    precision: str,
    threads: int,
    config: Path | None,
    nms: str,
    iou: float | None,
    conf: float | None,
    save_json: Path | None,
    fmt: str,
) -> None:
    """COCO mAP of MODEL on a COCO-format data set, with upstream's evaluation settings.

    Prints mAP 0.5:0.95, 0.5 and the other 10 COCO stats, and the AP of every class; the
    result is cached in the store (same model file, engine, config, NMS settings,
    annotations and image files: instant). The annotation file is validated first (one line
    naming the field). --nms/--iou/--conf change the NMS (as infer; said on stderr and in
    the JSON's nms_mode/nms); --save-json FILE writes the COCO results file.
    """
    _require_extras(engine, _CV2, _COCO_EVAL)
    from ..convert import convert
    from ..detect import evaluate

    with _progress_bar() as tick:
        result = evaluate(model, coco_dir, ann=ann, limit=limit, engine=engine,
                          precision=precision, threads=threads, config=config, nms=nms,
                          iou=iou, conf=conf, save_json=save_json, store=app.store,
                          registry=app.registry, progress=info, tick=tick,
                          convert=convert).to_dict()  # fmt: skip
    if fmt == "json":
        echo_json(result)
        return
    for line in _result_lines(result):
        click.echo(line)
    for name, ap in result["per_class_ap"].items():
        click.echo(f"  {name:<20} AP {_percent(ap)}")
    if result.get("images_per_s"):
        used: Any = result.get("threads")
        info(f"{result['images_per_s']:.1f} images/s (inference alone "
             f"{result['inference_images_per_s']:.1f} images/s"
             + (f"; {used} thread{'s' * (used != 1)}" if used else "")
             + ")")  # fmt: skip


def _result_lines(result: dict[str, Any]) -> list[str]:
    """The head of the eval table: the model and what its hash is of, the data set (name,
    images, annotation file and its sha256), mAP, and COCO's 12 stats in COCO's order."""
    from ..detect.coco import STAT_NAMES
    from ..hub.eval_result import EvalResult

    s, typed = result["stats"], EvalResult.from_json(result)
    data = typed.set_label if typed else f"{result['images']} images"
    precision = typed.precision_label if typed else result["precision"]
    lines = [
        f"{result['model']} on {data}, {result['engine']}, precision {precision}",
        f"model {result['model_path']}; sha256 of "
        f"{result.get('model_sha256_of') or 'the model'}: {result['model_sha256']}",
        f"data set {result['ann_file']}; sha256 of the annotation file: "
        f"{result.get('ann_sha256') or 'not recorded'}",
        f"mAP 0.5:0.95 {_percent(s.get('AP'))}   mAP 0.5 {_percent(s.get('AP50'))}",
    ]
    names = [*STAT_NAMES, *(k for k in s if k not in STAT_NAMES)]
    return [*lines, "  ".join(f"{k} {_percent(s.get(k))}" for k in names)]


def _percent(v: Any) -> str:
    """A COCO stat as a percentage; ``-`` where COCO has none (no ground truth: None/NaN, or
    the -1 of results written by earlier versions).

    >>> _percent(0.3251), _percent(None), _percent(float("nan")), _percent(-1.0)
    ('32.5', '-', '-', '-')
    """
    ok = isinstance(v, (int, float)) and v == v and v >= 0
    return f"{v * 100:.1f}" if ok else "-"


def _progress_bar() -> Any:
    """A rich progress bar on a terminal's stderr (yields ``tick(done, total)``), else None."""
    import contextlib
    import sys

    @contextlib.contextmanager
    def bar() -> Any:
        if not sys.stderr.isatty():
            yield None
            return
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as p:
            task = p.add_task("evaluating", total=None)

            def tick(done: int, total: int) -> None:
                p.update(task, completed=done, total=total)

            yield tick

    return bar()
