"""``picozoo infer``: run a PicoDet on images, draw the boxes, print the detections."""

from __future__ import annotations

from pathlib import Path

import click

from .common import App, echo_json, format_option, info, store_options

INFER_EPILOG = """\b
Example: picozoo infer picodet-s-416 dog.jpg street.jpg --out boxes/
Example: picozoo infer ./picodet_s_416_coco_lcnet_non_postprocess page.png --format json
Example: picozoo infer model.onnx page.png --config infer_cfg.yml --threshold 0.3
"""


@click.command("infer", epilog=INFER_EPILOG)
@click.argument("model", metavar="MODEL|PATH")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--engine", type=click.Choice(["onnxruntime", "paddle"]), default="onnxruntime",
              show_default=True, help="Inference engine.")  # fmt: skip
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Keep detections scoring at least this [default: infer_cfg.yml's "
              "draw_threshold, 0.5 upstream].")  # fmt: skip
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="infer_cfg.yml of a bare .onnx file.")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("output"), show_default=True,
              help="Where to write each image with its boxes drawn.")  # fmt: skip
@format_option("text", "json", default="text")
@store_options()
def infer_cmd(
    app: App,
    model: str,
    images: tuple[str, ...],
    engine: str,
    threads: int,
    threshold: float | None,
    config: Path | None,
    out_dir: Path,
    fmt: str,
) -> None:
    """Detect objects in IMAGEs with MODEL (a model id, a Paddle inference folder, or an
    .onnx file) and write each image with its boxes, class names and scores to --out.

    No-post-processing models are decoded with upstream's evaluation NMS (score 0.025, IoU
    0.6, top-k 1000, keep 100), then cut at --threshold; models exported with NMS run as they
    are. Times pre-processing, inference and post-processing per image (stderr).
    """
    from ..detect.infer import infer_images

    report = infer_images(
        app, model, [Path(i) for i in images], engine=engine, threads=threads,
        threshold=threshold, config=config, out_dir=out_dir, progress=info,
    )  # fmt: skip
    if fmt == "json":
        echo_json(report.rows)
    else:
        for r in report.rows:
            x, y, w, h = r["bbox"]
            click.echo(f"{r['image']}\t{r['category']}\t{r['score']:.3f}\t"
                       f"{x:.1f},{y:.1f},{w:.1f},{h:.1f}")  # fmt: skip
    info(report.timing_line())
