"""``picozoo bench`` and ``picozoo report``: measure latency, render and merge results.

A thin layer: options are parsed here, the work is done by :mod:`picozoo.bench`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import BenchFailedError, UsageError
from ..runtime.base import ENGINES
from .common import App, info, store_options

_REPORTS = ("table", "md", "csv", "json", "html")


def _parse_warmup(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise UsageError(
            f"--warmup must be 'auto' or a count >= 0, got {value!r}", hint="e.g. --warmup 20"
        )
    return n


def _parse_size(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    parts = value.lower().replace("*", "x").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) <= 0:
        raise UsageError(f"cannot parse --input-size {value!r}", hint="write HxW, e.g. 416x416")
    return dims[0], dims[1]


def _emit(text: str, out: str | None) -> None:
    """Report text to ``--out`` (atomically) or stdout."""
    if out:
        from ..atomic import atomic_write_text

        atomic_write_text(Path(out), text)
        info(f"wrote {out}")
    else:
        click.echo(text, nl=False)


def _write_plot(png: bytes, path: str) -> None:
    from ..bench.plot import write_png

    write_png(png, Path(path))
    info(f"wrote {path}")


@click.command(
    "bench",
    epilog="Example: picozoo bench picodet-s-416 --threads 1 --threads 4 --report md\n\n"
    "Example: picozoo bench model.onnx --threads 2 --min-time 5 --report json --out r.json",
)
@click.argument("models", nargs=-1, metavar="[MODEL|FILE.onnx|DIR]...")
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(list(ENGINES)),
    help="Inference engine (repeatable) [default: onnxruntime].",
)
@click.option(
    "--threads",
    "threads",
    multiple=True,
    type=click.IntRange(min=1),
    help="Thread count (repeatable: a thread-scaling table) [default: all logical cores].",
)
@click.option(
    "--postprocess", is_flag=True, help="Bench the model with post-processing (NMS) included."
)
@click.option(
    "--warmup",
    default="auto",
    show_default=True,
    help="Warm-up iterations, or 'auto': until the median of the last 5 moves < 5% "
    "(at most 200 iterations / 10 s).",
)
@click.option(
    "--min-iters",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Measure at least this many iterations...",
)
@click.option(
    "--min-time",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="...and for at least this many seconds.",
)
@click.option("--input-size", metavar="HxW", help="Input size for models with dynamic shapes.")
@click.option("--device", help="Device label for reports and merges [default: the CPU model].")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds allowed per cell.",
)
@click.option("--report", "fmt", type=click.Choice(_REPORTS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the report here, not stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the mAP-vs-latency PNG.")
@store_options()
def bench_cmd(
    app: App,
    models: tuple[str, ...],
    engines: tuple[str, ...],
    threads: tuple[int, ...],
    postprocess: bool,
    warmup: str,
    min_iters: int,
    min_time: float,
    input_size: str | None,
    device: str | None,
    timeout: float,
    fmt: str,
    out: str | None,
    plot: str | None,
) -> None:
    """Measure inference latency, each (model, engine, threads) in a fresh process.

    MODEL is a model id (its no-post-processing ONNX is converted or pulled first), an .onnx
    file, or a Paddle inference directory (--engine paddle). With no MODEL, every model with
    anything in the cache (a download or a conversion) is benched. A cell that fails is listed
    with its reason; the exit code is non-zero only when every cell failed.
    """
    from ..bench.report import render
    from ..bench.suite import run_suite
    from ..bench.targets import resolve_targets
    from ..targets import is_path_arg

    wu = _parse_warmup(warmup)
    size = _parse_size(input_size)
    needs_registry = not models or not all(is_path_arg(m) for m in models)
    targets = resolve_targets(
        models,
        engines or ("onnxruntime",),
        store=app.store,
        registry=app.registry if needs_registry else None,
        postprocess=postprocess,
        input_size=size,
        progress=info,
    )
    if not targets:
        raise UsageError(
            f"no model to bench: the cache {app.settings.cache_dir} has no model in it",
            hint="pass a model id or an .onnx file, or `picozoo pull MODEL` first",
        )
    doc = run_suite(
        targets,
        threads=list(dict.fromkeys(threads)) or [os.cpu_count() or 1],
        warmup=wu,
        min_iters=min_iters,
        min_time_s=min_time,
        timeout_s=timeout,
        device=device,
        debug=app.settings.debug,
        progress=info,
    )
    _emit(render(doc, fmt), out)
    if plot:
        from ..bench.report import plot_png

        _write_plot(plot_png(doc), plot)
    if doc.all_failed:
        raise BenchFailedError(
            "every benchmark cell failed", hint="see the reasons in the report above"
        )


@click.group("report", epilog="Example: picozoo report merge laptop.json phone.json --report md")
def report_group() -> None:
    """Re-render saved `picozoo bench --report json` results, or merge several machines."""


@report_group.command("show", epilog="Example: picozoo report show result.json --report html")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--report", "fmt", type=click.Choice(_REPORTS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the report here, not stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the mAP-vs-latency PNG.")
def show_cmd(result: str, fmt: str, out: str | None, plot: str | None) -> None:
    """Render one saved result file in another format."""
    from ..bench.records import load_document
    from ..bench.report import plot_png, render

    doc = load_document(Path(result))
    _emit(render(doc, fmt), out)
    if plot:
        _write_plot(plot_png(doc), plot)


@report_group.command(
    "merge", epilog="Example: picozoo report merge laptop.json phone.json --report md"
)
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--report", "fmt", type=click.Choice(_REPORTS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the report here, not stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the mAP-vs-latency PNG.")
def merge_cmd(results: tuple[str, ...], fmt: str, out: str | None, plot: str | None) -> None:
    """Combine result files from several machines: one latency column per device."""
    from ..bench.merge import merged_png, render_merged
    from ..bench.records import load_document

    docs = [load_document(Path(r)) for r in results]
    _emit(render_merged(docs, fmt), out)
    if plot:
        _write_plot(merged_png(docs), plot)


__all__ = ["bench_cmd", "report_group"]
