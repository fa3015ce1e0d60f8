"""Render ``picozoo.bench/1`` results as a terminal table, Markdown, CSV, JSON or HTML.

The Markdown table reproduces upstream's README layout (Model | Input size | mAP | mAP 0.5 |
Params | FLOPS | Latency), with the Params/FLOPs computed from the benchmarked artifact beside
the claimed ones, the measured median latency beside upstream's claimed CPU latency, plus
their ratio (not for cells with more threads than cores: those measure oversubscription), and,
when ``picozoo eval`` scored a benched file, that measured mAP beside the claim: with the
difference when it was measured on all of COCO val2017 (the set of the claims), else with the
name of its data set (the notes give each set's annotation file, sha256 and cells). A
Precision column appears when a cell is not fp32. Several thread counts add a
thread-scaling table of the measured (model, engine, precision) combinations; several engines or
precisions add the cross-engine table and a "fastest on this machine" line per model
(:mod:`.compare`). The footnotes (:mod:`.notes`) follow every table.

>>> "mAP<sup>val<br>0.5:0.95" in [h for _, h in MD_COLUMNS]
True

The examples below use ``doc = load_document(Path("laptop.json"))``, a saved result
(see :func:`picozoo.bench.records.load_document`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from ..errors import require
from ..render import (
    Markup,
    escape_text,
    markdown_table,
    markdown_text,
    markup,
    render_rows,
    strip_controls,
)
from .compare import combos, cross_engine_table, fastest_lines, measured_map_text
from .notes import OVERSUBSCRIBED_MARK, UNSTABLE_MARK, cell_notes, notes
from .records import SKIPPED, Document
from .rows import ReportRow, report_rows

REPORT_FORMATS = ("table", "md", "csv", "json", "html")

#: Upstream's README headers (configs/picodet/README_en.md), in order.
UPSTREAM_HEADERS = tuple(
    Markup(h)
    for h in (
        "Model",
        "Input size",
        "mAP<sup>val<br>0.5:0.95",
        "mAP<sup>val<br>0.5",
        "Params<br><sup>(M)",
        "FLOPS<br><sup>(G)",
    )
)
LATENCY_HEADER = "Latency<sup><small>{device}</small></sup><br><sup>(ms)"


def latency_header(device: str) -> Markup:
    """The latency column's header for ``device`` (a name from a result file: escaped).

    >>> latency_header("<b>pc</b>")
    'Latency<sup><small>&lt;b&gt;pc&lt;/b&gt;</small></sup><br><sup>(ms)'
    """
    return markup(LATENCY_HEADER, device=device)


#: (row key, Markdown header); the ``latency`` header names the device (:func:`latency_header`).
MD_COLUMNS: list[tuple[str, str]] = [
    ("display", "Model"),
    ("input_size", "Input size"),
    ("map", "mAP<sup>val<br>0.5:0.95"),
    ("map50", "mAP<sup>val<br>0.5"),
    ("params_m", "Params<br><sup>(M)"),
    ("params_m_artifact", "Params<br><sup>(M, artifact)"),
    ("flops_g", "FLOPS<br><sup>(G)"),
    ("flops_g_artifact", "FLOPS<br><sup>(G, artifact)"),
    ("claimed_cpu_ms", "Latency<sup><small>CPU, upstream</small></sup><br><sup>(ms)"),
    ("latency", LATENCY_HEADER),
    ("ratio", "measured /<br>claimed"),
    ("engine", "Engine"),
    ("threads", "Threads"),
    ("p90", "p90<br><sup>(ms)"),
    ("fps", "FPS"),
]
#: Shown only when some cell has them: (key, header, after which key).
MD_OPTIONAL: list[tuple[str, str, str]] = [
    ("map_measured_text", "mAP<sup>measured<br>0.5:0.95 (Δ)", "map"),
    ("precision", "Precision", "engine"),
    ("machine", "Machine", "latency"),
]
TABLE_OPTIONAL: list[tuple[str, str, str]] = [
    ("map_measured_text", "mAP measured (Δ)", "map"),
    ("precision", "Prec.", "engine"),
    ("machine", "Machine", "latency"),
]
#: Plain headers for the terminal table.
TABLE_COLUMNS: list[tuple[str, str]] = [
    ("model", "Model"),
    ("input_size", "Input"),
    ("map", "mAP"),
    ("params", "Params M (claim/artifact)"),
    ("flops", "FLOPs G (claim/artifact)"),
    ("claimed_cpu_ms", "Claimed CPU ms"),
    ("latency", "Median ms"),
    ("ratio", "Ratio"),
    ("engine", "Engine"),
    ("threads", "Thr"),
    ("p90", "p90 ms"),
    ("std", "std ms"),
    ("n", "n"),
    ("peak_rss_mb", "RSS MB"),
]
#: Machine-readable columns for CSV.
CSV_COLUMNS = [
    "device",
    "model",
    "model_id",
    "name",
    "input_size",
    "postprocess",
    "engine",
    "threads",
    "status",
    "median_ms",
    "mean_ms",
    "std_ms",
    "p90_ms",
    "p99_ms",
    "min_ms",
    "max_ms",
    "n",
    "fps",
    "claimed_cpu_ms",
    "ratio",
    "ratio_note",
    "map",
    "map50",
    "params_m",
    "params_m_artifact",
    "flops_g",
    "flops_g_artifact",
    "load_ms",
    "first_inference_ms",
    "warmup_n",
    "stable",
    "peak_rss_mb",
    "artifact_sha256",
    "error",
    "oversubscribed",
    "origin",
    "source",
    "precision",
    "image",
    "image_sha256",
    "engine_version",
    "map_measured",
    "map50_measured",
    "map_delta",
    "eval_images",
    "eval_dataset",
    "eval_set",
    "eval_ann_sha256",
    "eval_coco_val2017",
    "artifact_sha256_of",
    "machine",
]


def frame(doc: Document) -> Any:
    """The report rows as a pandas DataFrame (CSV column order).

    >>> frame(doc)["median_ms"].max()  # doctest: +SKIP
    43.6599585
    """
    pd = require("pandas", "bench")
    rows = [{k: getattr(r, k) for k in CSV_COLUMNS} for r in report_rows(doc)]
    df = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    df["eval_images"] = df["eval_images"].astype("Int64")  # a count, blank without an eval
    return df


def short_device(doc: Document) -> str:
    """The device name used in column headers (``--device`` or the CPU model).

    >>> short_device(doc)  # doctest: +SKIP
    'Intel(R) Xeon(R) Processor (2 cores)'
    """
    return doc.device or doc.environment.cpu_model or "this machine"


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def columns_for(
    rows: Sequence[ReportRow],
    base: Sequence[tuple[str, str]],
    optional: Sequence[tuple[str, str, str]],
) -> list[tuple[str, str]]:
    """``base`` plus the ``optional`` columns ``rows`` need: measured mAP when some cell has
    one, precision when some cell did not run fp32, the machine when cells name one (a
    ``bench --cluster`` run: each latency says which machine measured it).

    >>> [k for k, _ in columns_for([ReportRow(map_measured=31.0, precision="fp32")],
    ...                            [("map", "mAP"), ("engine", "Engine")], MD_OPTIONAL)]
    ['map', 'map_measured_text', 'engine']
    """
    wanted = {
        "map_measured_text": any(r.map_measured is not None for r in rows),
        "precision": any(r.precision != "fp32" for r in rows),
        "machine": any(r.machine for r in rows),
    }
    out = list(base)
    for key, header, after in optional:
        if wanted[key]:
            at = next((i + 1 for i, (k, _) in enumerate(out) if k == after), len(out))
            out.insert(at, (key, header))
    return out


def _display(row: ReportRow, *, markdown: bool) -> dict[str, Any]:
    """Formatted cells of one row, by column key."""
    return {
        **row.to_dict(),
        "display": row.shown_name,
        "map_measured_text": measured_map_text(row),
        "latency": _latency(row, markdown=markdown),
        "ratio": _ratio(row),
        "threads": f"{row.threads} {OVERSUBSCRIBED_MARK}" if row.oversubscribed else row.threads,
        "p90": _num(row.p90_ms),
        "std": _num(row.std_ms),
        "fps": _num(row.fps, 1),
        "peak_rss_mb": _num(row.peak_rss_mb, 0),
        "claimed_cpu_ms": _num(row.claimed_cpu_ms, 1),
        **_size_cells(row),
    }


def _ratio(row: ReportRow) -> str:
    """``1.23x``; ``- (claim: paddle, 12 thr)`` when the cell was measured under other
    conditions than the claim; ``-`` without a ratio (no claim, failed, oversubscribed).

    >>> _ratio(ReportRow(ratio_note="claim: without post-processing"))
    '- (claim: without post-processing)'
    """
    if row.ratio is not None:
        return f"{row.ratio:.2f}x"
    return f"- ({row.ratio_note})" if row.ratio_note else "-"


def _latency(row: ReportRow, *, markdown: bool) -> str:
    """The median (marked when unstable), or why the cell failed."""
    if row.status == "ok":
        return _num(row.median_ms) + (f" {UNSTABLE_MARK}" if not row.stable else "")
    reason = row.error or "failed"
    if markdown:
        reason = reason.replace("\n", " ")
    return f"{'skipped' if row.stage == SKIPPED else 'failed'}: {reason}"


def _size_cells(row: ReportRow) -> dict[str, str]:
    """Claimed mAPs, and params/FLOPs claimed beside the artifact's own."""
    out = {k: _num(getattr(row, k), 1) for k in ("map", "map50")}
    for k in ("params_m", "params_m_artifact", "flops_g", "flops_g_artifact"):
        out[k] = _num(getattr(row, k))
    out["params"] = f"{out['params_m']} / {out['params_m_artifact']}"
    out["flops"] = f"{out['flops_g']} / {out['flops_g_artifact']}"
    return out


def scaling_rows(doc: Document) -> tuple[list[str], list[list[str]]] | None:
    """Thread-scaling table: one row per measured (model, input size, engine), its median ms
    per thread count ("-" where that count failed) and the speed-up vs the fewest threads;
    None when only one thread count was run.

    >>> headers, body = scaling_rows(doc)  # doctest: +SKIP
    >>> body[0][-1]  # doctest: +SKIP
    '1.67x'
    """
    threads = sorted({c.threads for c in doc.cells})
    measured = _by_threads(report_rows(doc))
    if len(threads) < 2 or not measured or len(machines(doc)) > 1:  # see machine_rows
        return None
    base = threads[0]
    headers: list[str] = [Markup("Model"), Markup("Input size"), Markup("Engine")]
    headers += [Markup(f"{t} thread{'s' if t > 1 else ''}<br><sup>(ms)") for t in threads]
    headers += [Markup(f"speed-up<br>{t} vs {base}") for t in threads[1:]]
    body = [
        [*key, *(_median_cell(by.get(t)) for t in threads)]
        + [_speedup(by.get(base), by.get(t)) for t in threads[1:]]
        for key, by in measured.items()
    ]
    return headers, body


def machines(doc: Document) -> list[str]:
    """The fleet machines of a ``bench --cluster`` document, in order (none: one machine).

    >>> machines(doc)  # doctest: +SKIP
    ['board-a', 'laptop-b']
    """
    return list(dict.fromkeys(c.machine.name for c in doc.cells if c.machine is not None))


def machine_rows(doc: Document) -> tuple[list[str], list[list[str]]] | None:
    """A ``bench --cluster`` result's latency per machine: one row per (model, input size,
    engine, precision, threads), a median-ms column per machine (why, where it failed);
    None when the cells name no machine.

    >>> headers, body = machine_rows(doc)  # doctest: +SKIP
    >>> headers[-2:], body[0][-2:]  # doctest: +SKIP
    (['board-a (ms)', 'laptop-b (ms)'], ['3.12', 'failed: machine board-a left the cluster'])
    """
    names = machines(doc)
    if not names:
        return None
    table: dict[tuple[str, ...], dict[str, str]] = {}
    for cell, row in zip(doc.cells, report_rows(doc), strict=True):
        key = (row.shown_name, row.input_size or "-", row.engine_label, cell.precision_shown,
               str(cell.threads))  # fmt: skip
        if cell.machine is not None:
            shown = _latency(row, markdown=True)
            if row.status == "ok" and row.oversubscribed:
                shown += f" {OVERSUBSCRIBED_MARK}"
            table.setdefault(key, {})[cell.machine.name] = shown
    headers: list[str] = [Markup("Model"), Markup("Input size"), Markup("Engine"),
                          Markup("Precision"), Markup("Threads")]  # fmt: skip
    headers += [f"{n} (ms)" for n in names]
    body = [[*key, *(by.get(n, "-") for n in names)] for key, by in table.items()]
    return headers, body


def _by_threads(rows: list[ReportRow]) -> dict[tuple[str, str, str], dict[int, ReportRow]]:
    """Measured rows by (model, input size, engine), then by thread count."""
    measured: dict[tuple[str, str, str], dict[int, ReportRow]] = {}
    for r in rows:
        if r.status == "ok":
            measured.setdefault((r.shown_name, r.input_size or "-", r.engine_label), {})[
                r.threads
            ] = r
    return measured


def _median_cell(r: ReportRow | None) -> str:
    """A median in the thread-scaling table (marked when unstable or oversubscribed), ``-``
    when missing."""
    if r is None:
        return "-"
    marks = [UNSTABLE_MARK] if r.stable is False else []
    marks += [OVERSUBSCRIBED_MARK] if r.oversubscribed else []
    return _num(r.median_ms) + "".join(f" {m}" for m in marks)


def _speedup(a: ReportRow | None, b: ReportRow | None) -> str:
    """``a``'s median over ``b``'s (``1.67x``), ``-`` when either is missing."""
    if a is None or b is None or not b.median_ms or a.median_ms is None:
        return "-"
    return f"{a.median_ms / b.median_ms:.2f}x"


def upstream_frame(doc: Document, device: str) -> Any:
    """The upstream-layout table as a pandas DataFrame of display strings; the columns are the
    Markdown headers of :data:`MD_COLUMNS` (``{device}`` filled in).

    >>> upstream_frame(doc, "laptop").columns[0]  # doctest: +SKIP
    'Model'
    """
    pd = require("pandas", "bench")
    rows = report_rows(doc)
    shown = [_display(r, markdown=True) for r in rows]
    columns = columns_for(rows, MD_COLUMNS, MD_OPTIONAL)
    data = {
        latency_header(device) if k == "latency" else Markup(h): [_cell(d[k]) for d in shown]
        for k, h in columns
    }
    return pd.DataFrame(data, columns=list(data), dtype=object)


#: captions of the tables that follow the main one
SCALING_CAPTION = "Thread scaling (median latency)"
MACHINES_CAPTION = "Per machine (median latency; bench --cluster)"
ENGINES_CAPTION = "Across engines and precisions (fastest first per model and thread count)"


def extra_tables(doc: Document) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables after the main one: thread scaling (several thread counts) and the
    cross-engine table (several engines or precisions), each with its caption.

    >>> [caption for caption, _, _ in extra_tables(doc)]  # doctest: +SKIP
    ['Thread scaling (median latency)']
    """
    out = []
    per_machine = machine_rows(doc)
    if per_machine:
        out.append((MACHINES_CAPTION, *per_machine))
    scaling = scaling_rows(doc)
    if scaling:
        out.append((SCALING_CAPTION, *scaling))
    engines = cross_engine_table(report_rows(doc))
    if engines:
        out.append((ENGINES_CAPTION, *engines))
    return out


def to_markdown(doc: Document) -> str:
    """The upstream-style Markdown table, thread scaling, the cross-engine table with the
    fastest way to run each model, and notes.

    >>> to_markdown(doc).splitlines()[0][:28]  # doctest: +SKIP
    '| Model | Input size | mAP<s'
    """
    table = upstream_frame(doc, short_device(doc))
    parts = [markdown_table(list(table.columns), table.values.tolist())]
    for caption, headers, body in extra_tables(doc):
        parts.append(f"\n{markdown_text(caption)}:\n\n" + markdown_table(headers, body))
    fastest = fastest_lines(report_rows(doc))
    if fastest and len(combos(report_rows(doc))) > 1:
        bold = [
            f"**{markdown_text(head)}:**{markdown_text(rest)}"
            for head, rest in (f.split(":", 1) for f in fastest)
        ]
        parts.append("\n" + "\n\n".join(bold) + "\n")
    parts.append(markdown_notes(notes(doc)))
    return "".join(parts)


def markdown_notes(lines: Sequence[str]) -> str:
    """The notes as a Markdown list, each escaped (:func:`~picozoo.render.markdown_text`: a
    line break or HTML in a name stays inside its item).

    >>> markdown_notes(["a <b>", "c\\n# d"])
    '\\n- a &lt;b>\\n- c # d\\n'
    """
    return "\n" + "\n".join(f"- {markdown_text(n)}" for n in lines) + "\n"


def _cell(v: Any) -> str:
    return "-" if v is None or v == "" else str(v)


def to_table(doc: Document) -> str:
    """A terminal table (rich), plus notes.

    >>> "Median ms" in to_table(doc)  # doctest: +SKIP
    True
    """
    buf = io.StringIO()
    flat = report_rows(doc)
    rows = [_display(r, markdown=False) for r in flat]
    columns = columns_for(flat, TABLE_COLUMNS, TABLE_OPTIONAL)
    render_rows(rows, columns, "table", title=f"picozoo bench: {short_device(doc)}", stream=buf)
    if len(combos(flat)) > 1:
        buf.write("".join(f"{strip_controls(line)}\n" for line in fastest_lines(flat)))
    buf.write("".join(f"{strip_controls(n)}\n" for n in cell_notes(doc)))
    return buf.getvalue()


def to_csv(doc: Document) -> str:
    """The report rows as CSV (:data:`CSV_COLUMNS`).

    >>> to_csv(doc).splitlines()[0].split(",")[:3]  # doctest: +SKIP
    ['device', 'model', 'model_id']
    """
    return csv_text(frame(doc))


def csv_text(df: Any) -> str:
    """A DataFrame as CSV, its text cells through :func:`~picozoo.render.csv_cell` (a name
    starting with ``=``, ``+``, ``-``, ``@``... is never a spreadsheet formula; numbers stay
    numbers)."""
    from ..render import csv_cell

    df = df.copy()
    for column in df.columns:
        if df[column].dtype.kind not in "biufcmM":  # text (object or str), not numbers
            df[column] = df[column].map(csv_cell)
    df.columns = [csv_cell(c) for c in df.columns]
    return str(df.to_csv(index=False, lineterminator="\n"))


def to_json(doc: Document) -> str:
    """The document itself, as saved (see :meth:`~picozoo.bench.records.Document.to_json`).

    >>> to_json(doc).startswith('{\\n "schema": "picozoo.bench/1"')  # doctest: +SKIP
    True
    """
    return doc.to_json()


def plot_png(doc: Document) -> bytes:
    """The mAP-vs-latency plot of one result document (PNG bytes).

    >>> plot_png(doc)[:4]  # doctest: +SKIP
    b'\\x89PNG'
    """
    from .plot import map_vs_latency_png, series_from_rows

    return map_vs_latency_png(
        series_from_rows(report_rows(doc)),
        title=f"mAP vs latency, measured on {short_device(doc)}",
    )


def html_page(
    title: str,
    tables: Sequence[tuple[str | None, list[str], list[list[str]]]],
    notes_: Sequence[str],
    png: bytes | None,
) -> str:
    """A single self-contained HTML page: tables, notes, and the plot as a base64 data URI.

    Every text -- title, captions, headers, cells, notes -- is escaped here, once
    (:func:`~picozoo.render.escape_text`); only :class:`~picozoo.render.Markup` headers (our
    templates, their fields escaped) pass as they are.

    >>> html_page("t", [(None, ["A"], [["1"]])], ["a note"], None).count("<td>1</td>")
    1
    >>> "<script>" in html_page("<script>", [(None, ["<script>"], [["<script>"]])], [], None)
    False
    """
    esc = escape_text

    def table(headers: list[str], body: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in body)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{rows}</tbody>\n</table>\n"

    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{esc(title)}</title>\n",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;"
        "padding:4px 8px;text-align:center}td:first-child{text-align:left}"
        "th{background:#f4f4f4}li{margin:.2em 0}img{max-width:100%}</style>\n</head>\n<body>\n",
        f"<h1>{esc(title)}</h1>\n",
    ]
    for caption, headers, body in tables:
        if caption:
            parts.append(f"<h2>{esc(caption)}</h2>\n")
        parts.append(table(headers, body))
    if png is not None:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(
            "<h2>mAP vs latency</h2>\n"
            f'<img alt="mAP vs latency" src="data:image/png;base64,{b64}">\n'
        )
    parts.append("<ul>\n" + "".join(f"<li>{esc(n)}</li>\n" for n in notes_) + "</ul>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def to_html(doc: Document, png: bytes | None = None) -> str:
    """The Markdown report's tables as one self-contained HTML page with the plot embedded.

    >>> to_html(doc).startswith("<!DOCTYPE html>")  # doctest: +SKIP
    True
    """
    device = short_device(doc)
    table = upstream_frame(doc, device)
    tables: list[tuple[str | None, list[str], list[list[str]]]] = [
        ("Latency", list(table.columns), table.values.tolist())
    ]
    tables += extra_tables(doc)
    flat = report_rows(doc)
    fastest = fastest_lines(flat) if len(combos(flat)) > 1 else []
    return html_page(
        f"picozoo bench: {device}",
        tables,
        fastest + notes(doc),
        png if png is not None else plot_png(doc),
    )


def check_formats(fmt: str, *, plot: bool = False) -> None:
    """Raise :class:`~picozoo.errors.MissingDependencyError` now when rendering ``fmt`` (and
    the plot) will need a package that is not installed, so that a long benchmark does not
    fail at the end.

    >>> check_formats("json")
    """
    if fmt in ("md", "csv", "html"):
        require("pandas", "bench")
    if plot or fmt == "html":
        require("matplotlib", "bench")


def render(doc: Document, fmt: str) -> str:
    """The report of ``doc`` in ``fmt`` (one of :data:`REPORT_FORMATS`).

    >>> render(doc, "csv").splitlines()[0][:18]  # doctest: +SKIP
    'device,model,model'
    """
    if fmt == "md":
        return to_markdown(doc)
    if fmt == "csv":
        return to_csv(doc)
    if fmt == "json":
        return to_json(doc)
    if fmt == "html":
        return to_html(doc)
    if fmt == "table":
        return to_table(doc)
    raise ValueError(f"unknown report format {fmt!r}")
