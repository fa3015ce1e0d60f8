"""``picozoo bench`` and ``picozoo report``: measure latency, render and merge results.

A thin layer: options are parsed here, the work is done by :mod:`picozoo.bench`. Outputs are
checked before anything is measured, and written by :func:`picozoo.bench.output.write_outputs`
(a file that cannot be written is saved to a temporary file, never lost).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import BenchFailedError, UsageError
from ..resolve import SOURCES
from ..runtime.base import ENGINES, PRECISIONS
from .common import App, info, store_options

if TYPE_CHECKING:
    from ..bench.output import Output

_REPORTS = ("table", "md", "csv", "json", "html")
#: every precision some engine runs (fp32 first), as picozoo.bench.records.ALL_PRECISIONS
_PRECISIONS = list(dict.fromkeys(p for ps in PRECISIONS.values() for p in ps))

#: What ``picozoo bench`` is doing (``preparing``: pulls/conversions; ``measuring``); the
#: Ctrl-C message says what that left behind (see :func:`interrupted_message`).
_phase = {"now": ""}


def interrupted_message() -> str:
    """The Ctrl-C message of ``picozoo bench``, for what it was doing.

    >>> interrupted_message()
    'interrupted: no result was written'
    """
    if _phase["now"] == "preparing":
        return (
            "interrupted while preparing the models: no result was written (partial downloads "
            "are kept and resumed next time)"
        )
    if _phase["now"] == "measuring":
        return "interrupted while measuring: no result was written"
    return "interrupted: no result was written"


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


def _check_outputs(out: str | None, plot: str | None) -> None:
    """Refuse unwritable --out/--plot paths before any work is done."""
    from ..bench.output import check_writable

    for option, path in (("--out", out), ("--plot", plot)):
        if path:
            check_writable(Path(path), option)


def _write(
    text: str,
    out: str | None,
    png: bytes | None,
    plot: str | None,
    results: Output | None = None,
) -> None:
    """The report to ``--out`` (else stdout) and the PNG to ``--plot``; see
    :func:`picozoo.bench.output.write_outputs` (``results``: the document, saved aside if an
    output cannot be written)."""
    from ..bench.output import Output, write_outputs

    outputs = [Output("--out", Path(out), text.encode("utf-8"))] if out else []
    if plot and png is not None:
        outputs.append(Output("--plot", Path(plot), png, "plot"))
    if not out:
        click.echo(text, nl=False)
    write_outputs(outputs, say=info, results=results)


@click.command(
    "bench",
    epilog="Example: picozoo bench picodet-s-416 --threads 1 --threads 4 --report md\n\n"
    "Example: picozoo bench picodet-s-416 --engine all --precision all --threads 2 --report md"
    "\n\nExample: picozoo bench model.onnx --threads 2 --min-time 5 --report json --out r.json",
)
@click.argument("models", nargs=-1, metavar="[MODEL|FILE.onnx|DIR]...")
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice([*ENGINES, "all"]),
    help="Inference engine (repeatable; all: every installed engine, the others are skipped "
    "with a note) [default: onnxruntime].",
)
@click.option(
    "--precision",
    "precisions",
    multiple=True,
    type=click.Choice([*_PRECISIONS, "all"]),
    help="Precision the engines compute in (repeatable; all: every precision of each engine; "
    "one an engine does not run is skipped with a note) [default: fp32].",
)
@click.option(
    "--threads",
    "threads",
    multiple=True,
    type=click.IntRange(min=1),
    help="Thread count (repeatable: a thread-scaling table) [default: the cores this process "
    "may use: CPU affinity, cgroup quota].",
)
@click.option(
    "--postprocess", is_flag=True, help="Bench the model with post-processing (NMS) included."
)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="auto",
    show_default=True,
    help="MODEL on ONNX Runtime: upstream's ONNX (pulled; needs only [bench]), one converted "
    "from the inference tarball ([convert]), or auto: upstream's when the model has one of "
    "the requested post-processing kind, else converted.",
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
    precisions: tuple[str, ...],
    threads: tuple[int, ...],
    postprocess: bool,
    source: str,
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
    """Measure inference latency, each (model, engine, precision, threads) in a fresh process.

    MODEL is a model id, an .onnx file, or a Paddle inference directory (--engine paddle). A
    model id is benched without post-processing (as upstream measured): on ONNX Runtime from
    the ONNX --source selects (stderr says which), on Paddle Inference from its inference
    tarball, on OpenVINO, MNN and ncnn from the file `picozoo convert --to ENGINE` makes;
    whatever is missing is pulled or converted first. With no MODEL, every model with
    anything in the cache is benched. A cell whose file `picozoo eval` scored (same engine and
    precision) shows that measured mAP beside upstream's claim. A cell that fails is listed
    with its reason; the exit code is non-zero only when every cell failed.
    """
    from ..bench.engines import plan_engines
    from ..bench.environment import usable_cores
    from ..bench.evals import load_evals
    from ..bench.notes import oversubscription
    from ..bench.output import Output
    from ..bench.report import check_formats, plot_png, render
    from ..bench.stats import ADVICE
    from ..bench.suite import run_suite
    from ..bench.targets import resolve_targets
    from ..targets import is_path_arg

    wu = _parse_warmup(warmup)
    size = _parse_size(input_size)
    _check_outputs(out, plot)
    check_formats(fmt, plot=bool(plot))
    plan = plan_engines(engines or ("onnxruntime",), precisions or ("fp32",))
    for note in plan.notes:
        info(f"note: {note}")
    cores = usable_cores()
    counts = list(dict.fromkeys(threads)) or [cores]
    over = oversubscription(counts, cores)
    if over:
        info(f"warning: {over}; their ratio to upstream's latency is not shown")
    needs_registry = not models or not all(is_path_arg(m) for m in models)
    _phase["now"] = "preparing"
    targets = resolve_targets(
        models,
        plan.pairs,
        store=app.store,
        registry=app.registry if needs_registry else None,
        postprocess=postprocess,
        source=source,
        input_size=size,
        progress=info,
        implicit=plan.implicit,
        notes=plan.notes,
    )
    if not targets:
        raise UsageError(
            f"no model to bench: the cache {app.settings.cache_dir} has no model in it",
            hint="pass a model id or an .onnx file, or `picozoo pull MODEL` first",
        )
    _phase["now"] = "measuring"
    doc = run_suite(
        targets,
        threads=counts,
        warmup=wu,
        min_iters=min_iters,
        min_time_s=min_time,
        timeout_s=timeout,
        device=device,
        debug=app.settings.debug,
        progress=info,
        evals=load_evals(app.store.root),
        notes=plan.notes,
    )
    _phase["now"] = "writing"
    if any(c.measured and not c.measured.stability.stable for c in doc.cells):
        info(f"(!) some cells are unstable: {ADVICE}")
    results = Output("results", Path("bench-results.json"), doc.to_json().encode(), "results")
    png = plot_png(doc) if plot else None
    _write(render(doc, fmt), out, png, plot, results=results)
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
    from ..bench.report import check_formats, plot_png, render

    _check_outputs(out, plot)
    check_formats(fmt, plot=bool(plot))
    doc = load_document(Path(result))
    _write(render(doc, fmt), out, plot_png(doc) if plot else None, plot)


@report_group.command(
    "merge", epilog="Example: picozoo report merge laptop.json phone.json --report md"
)
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--report", "fmt", type=click.Choice(_REPORTS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the report here, not stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the mAP-vs-latency PNG.")
def merge_cmd(results: tuple[str, ...], fmt: str, out: str | None, plot: str | None) -> None:
    """Combine result files from several machines: one latency column per device (a file
    that repeats the run of an earlier one is merged once)."""
    from ..bench.merge import merged_png, render_merged, repeated_runs
    from ..bench.records import load_document
    from ..bench.report import check_formats

    _check_outputs(out, plot)
    check_formats(fmt, plot=bool(plot))
    docs = [load_document(Path(r)) for r in results]
    for message in repeated_runs(docs, results):
        info(f"warning: {message}")
    _write(render_merged(docs, fmt), out, merged_png(docs) if plot else None, plot)


__all__ = ["bench_cmd", "report_group"]
