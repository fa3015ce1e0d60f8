"""``picozoo bench`` and ``picozoo report``: measure latency, render and merge results.

A thin layer: options are parsed here, the work is done by :func:`picozoo.bench.run`. Outputs are
checked before anything is measured, and written by :func:`picozoo.bench.output.write_outputs`
(a file that cannot be written is saved to a temporary file, never lost).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import BenchFailedError
from ..resolve import SOURCES
from ..runtime.base import ENGINES, PRECISIONS
from ..settings import Settings
from .common import (
    MODEL_OR_PATH,
    AliasOption,
    App,
    FiniteFloat,
    bounded_threads,
    format_option,
    info,
    postprocess_option,
    store_options,
)

if TYPE_CHECKING:
    from ..bench.output import Output

_REPORTS = ("table", "md", "csv", "json", "html")
#: every precision some engine runs (fp32 first), as picozoo.bench.records.ALL_PRECISIONS
_PRECISIONS = list(dict.fromkeys(p for ps in PRECISIONS.values() for p in ps))

#: What ``picozoo bench`` is doing (``preparing``: pulls/conversions; ``measuring``); the
#: Ctrl-C message says what that left behind (see :func:`interrupted_message`).
_phase = {"now": ""}


def interrupted_message(how: str = "interrupted") -> str:
    """The message of ``picozoo bench`` ended by Ctrl-C (``how``: ``interrupted``) or SIGTERM
    (``terminated``), for what it was doing.

    >>> interrupted_message()
    'interrupted: no result was written'
    """
    if _phase["now"] == "preparing":
        return (
            f"{how} while preparing the models: no result was written (partial downloads "
            "are kept and resumed next time)"
        )
    if _phase["now"] == "measuring":
        return f"{how} while measuring: no result was written"
    return f"{how}: no result was written"


def _set_phase(now: str) -> None:
    _phase["now"] = now


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
    epilog="Example: picozoo bench picodet-s-416 --threads 1 --threads 4 --format md\n\n"
    "Example: picozoo bench picodet-s-416 --engine all --precision all --threads 2 --format md"
    "\n\nExample: picozoo bench model.onnx --threads 2 --min-time 5 --format json --out r.json"
    "\n\nExample: picozoo bench picodet-xs-320 --postprocess --image bus.jpg --format md"
    "\n\nExample: picozoo bench picodet-s-416 --cluster tcp://10.0.0.2:8786 --format md",
)
@click.argument("models", nargs=-1, metavar=f"[{MODEL_OR_PATH}]...")
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
    callback=bounded_threads,
    help="Thread count (repeatable: a thread-scaling table; at most 4x the usable cores, at "
    "least 16) [default: the cores this process may use: CPU affinity, cgroup quota].",
)
@postprocess_option(False, "Bench model ids with post-processing (NMS) included.")
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="auto",
    show_default=True,
    help="MODEL on ONNX Runtime: upstream's ONNX (pulled; needs only [bench]), one converted "
    "from the inference tarball (the store's `picozoo convert` output when there is one, else "
    "converted now: [convert]), or auto: the store's conversion when there is one, else "
    "upstream's when the model has one of the requested post-processing kind, else converted.",
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
    type=FiniteFloat(min=0),
    default=2.0,
    show_default=True,
    help="...and for at least this many seconds.",
)
@click.option(
    "--input-size",
    metavar="HxW",
    cls=AliasOption,
    aliases=["--input-shape"],
    help="Input size for models with dynamic shapes.",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False),
    help="Feed this image, pre-processed as `picozoo infer` does with each model's "
    "infer_cfg.yml, instead of seeded random data (what post-processed models need: their "
    "NMS costs what it costs on a real image); each cell records its name and sha256 "
    "([eval]).",
)
@click.option("--device", help="Device label for reports and merges [default: the CPU model].")
@click.option(
    "--timeout",
    type=FiniteFloat(min=1),
    default=900.0,
    show_default=True,
    help="Seconds allowed per cell.",
)
@click.option(
    "--cluster",
    metavar="tcp://HOST:8786",
    help="Measure every cell on every bench machine of this Dask cluster (workers started as "
    "`dask worker tcp://HOST:8786 --name NAME --nthreads 1 --resources bench=1`), one cell "
    "at a time per machine, each pulling the models into its own cache from its own mirror; "
    "one table, a column per machine ([fleet]) [default: "
    "PICOZOO_CLUSTER, else this machine].",
)
@click.option(
    "--on",
    "on",
    multiple=True,
    metavar="NAME",
    help="With --cluster: only the machine of this worker --name (repeatable).",
)
@format_option(*_REPORTS, aliases=["--report"])
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
    image: str | None,
    device: str | None,
    timeout: float,
    cluster: str | None,
    on: tuple[str, ...],
    fmt: str,
    out: str | None,
    plot: str | None,
) -> None:
    """Measure inference latency, each (model, engine, precision, threads) in a fresh process.

    MODEL is a model id, an .onnx file, or a Paddle inference directory (--engine paddle). A
    model id is benched without post-processing (as upstream measured): on ONNX Runtime from
    the ONNX --source selects (the one `picozoo convert` made when the cache has it; stderr
    says which), on Paddle Inference from its inference
    tarball, on OpenVINO, MNN and ncnn from the file `picozoo convert --to ENGINE` makes, on
    Paddle-Lite (--engine lite) from the x86 .nb `picozoo convert --to lite` builds;
    whatever is missing is pulled or converted first. With no MODEL, every model with
    anything in the cache is benched. A cell whose file `picozoo eval` scored (same engine and
    precision) shows that measured mAP beside upstream's claim. A cell that fails is listed
    with its reason; the exit code is non-zero only when every cell failed.
    """
    from ..bench import run
    from ..bench.api import check_installed
    from ..bench.output import Output
    from ..bench.report import check_formats, plot_png, render
    from ..bench.stats import ADVICE

    _check_outputs(out, plot)
    report_needs = [("pandas", ("bench",), None)] if fmt in ("md", "csv", "html") else []
    if plot or fmt == "html":  # what check_formats requires, named with the engines at once
        report_needs.append(("matplotlib", ("bench",), None))
    check_installed(engines, report_needs)
    check_formats(fmt, plot=bool(plot))
    doc = run(
        models, engines=engines, precisions=precisions, threads=threads,
        postprocess=postprocess, source=source, warmup=warmup, min_iters=min_iters,
        min_time=min_time, input_size=input_size, device=device, timeout=timeout, image=image,
        store=app.store, progress=info, phase=_set_phase, cluster=cluster, on=on,
    )  # fmt: skip
    _phase["now"] = "writing"
    if any(c.measured and not c.measured.stability.stable for c in doc.cells):
        info(f"(!) some cells are unstable: {ADVICE}")
    results = Output("results", Path("bench-results.json"), doc.to_json().encode(), "results")
    png = plot_png(doc) if plot else None
    _write(render(doc, fmt), out, png, plot, results=results)
    if doc.all_failed:
        if all(c.failure and c.failure.skipped for c in doc.cells):
            raise BenchFailedError(
                "nothing was measured: this CPU cannot run the precisions asked",
                hint="see what each engine computes in above; bench the precision it runs",
            )
        raise BenchFailedError(
            "every benchmark cell failed", hint="see the reasons in the report above"
        )


@click.group("report", epilog="Example: picozoo report merge laptop.json phone.json --format md")
def report_group() -> None:
    """Re-render saved `picozoo bench --format json` results, or merge several machines."""


@report_group.command("show", epilog="Example: picozoo report show result.json --format html")
@click.argument("result", type=click.Path(dir_okay=False))
@format_option(*_REPORTS, aliases=["--report"])
@click.option("--out", type=click.Path(dir_okay=False), help="Write the report here, not stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also write the mAP-vs-latency PNG.")
def show_cmd(result: str, fmt: str, out: str | None, plot: str | None) -> None:
    """Render one saved result file in another format."""
    from ..bench.records import load_document
    from ..bench.report import check_formats, plot_png, render

    _check_outputs(out, plot)
    check_formats(fmt, plot=bool(plot))
    doc = load_document(Path(result), max_bytes=Settings.from_env().max_result_bytes)
    _write(render(doc, fmt), out, plot_png(doc) if plot else None, plot)


@report_group.command(
    "merge", epilog="Example: picozoo report merge laptop.json phone.json --format md"
)
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@format_option(*_REPORTS, aliases=["--report"])
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
    cap = Settings.from_env().max_result_bytes
    docs = [load_document(Path(r), max_bytes=cap) for r in results]
    for message in repeated_runs(docs, results):
        info(f"warning: {message}")
    _write(render_merged(docs, fmt), out, merged_png(docs) if plot else None, plot)


__all__ = ["bench_cmd", "report_group"]
