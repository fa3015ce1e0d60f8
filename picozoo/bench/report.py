"""Render ``picozoo.bench/1`` results as a terminal table, Markdown, CSV, JSON or HTML.

The Markdown table reproduces upstream's README layout (Model | Input size | mAP | mAP 0.5 |
Params | FLOPS | Latency), with the Params/FLOPs computed from the benchmarked artifact beside
the claimed ones, the measured median latency beside upstream's claimed CPU latency, plus
their ratio (not for cells with more threads than cores: those measure oversubscription), and,
when ``picozoo eval`` scored a benched file, that measured mAP beside the claim with the
difference (a Precision column appears when a cell is not fp32). Several thread counts add a
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
import html
import io
from collections.abc import Sequence
from typing import Any

from ..errors import require
from ..hub.registry import Claims
from ..render import markdown_table, render_rows
from .compare import combos, cross_engine_table, fastest_lines, measured_map_text
from .notes import OVERSUBSCRIBED_MARK, UNSTABLE_MARK, cell_notes, notes, origin_of
from .records import Cell, Document

REPORT_FORMATS = ("table", "md", "csv", "json", "html")
_STATS = ("median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "n", "fps")

#: Upstream's README headers (configs/picodet/README_en.md), in order.
UPSTREAM_HEADERS = (
    "Model",
    "Input size",
    "mAP<sup>val<br>0.5:0.95",
    "mAP<sup>val<br>0.5",
    "Params<br><sup>(M)",
    "FLOPS<br><sup>(G)",
)
LATENCY_HEADER = "Latency<sup><small>{device}</small></sup><br><sup>(ms)"

#: (row key, Markdown header); ``{device}`` is filled in with the short device name.
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
]
TABLE_OPTIONAL: list[tuple[str, str, str]] = [
    ("map_measured_text", "mAP measured (Δ)", "map"),
    ("precision", "Prec.", "engine"),
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
    "engine_version",
    "map_measured",
    "map50_measured",
    "map_delta",
    "eval_images",
    "eval_dataset",
]


def flat_rows(doc: Document) -> list[dict[str, Any]]:
    """One flat dict per cell (keys: the CSV columns and a few more for display): claims,
    artifact-derived params/FLOPs, statistics, status.

    >>> flat_rows(doc)[0]["median_ms"], flat_rows(doc)[0]["claimed_cpu_ms"]  # doctest: +SKIP
    (25.3141355, 6.6)
    """
    return [_row(doc, c) for c in doc.cells]


def _row(doc: Document, c: Cell) -> dict[str, Any]:
    claims, info, m, mm = c.claims or Claims(), c.modelinfo, c.measured, c.measured_map
    stats = m.stats if m else None
    claimed = claims.latency_ms.get("cpu")
    median = stats.median_ms if stats else None
    ratio = None
    if median is not None and claimed and not c.oversubscribed:  # oversubscribed: not the model
        ratio = median / claimed
    return {
        "device": doc.device,
        "model": c.model,
        "model_id": c.model_id,
        "name": c.name,
        "display": c.name or c.model,
        "plot_label": f"{c.name} {c.input_size[0]}" if c.name and c.input_size else c.model,
        "input_size": "*".join(str(d) for d in c.input_size) if c.input_size else None,
        "postprocess": c.postprocess,
        "engine": c.engine,
        "threads": c.threads,
        "status": "ok" if c.ok else "failed",
        **{k: getattr(stats, k) if stats else None for k in _STATS},
        "claimed_cpu_ms": claimed,
        "ratio": ratio,
        "map": claims.map,
        "map50": claims.map50,
        "params_m": claims.params_m,
        "params_m_artifact": info.params / 1e6 if info else None,
        "flops_g": claims.flops_g,
        "flops_g_artifact": info.flops / 1e9 if info else None,
        "load_ms": m.load_ms if m else None,
        "first_inference_ms": m.first_inference_ms if m else None,
        "warmup_n": m.warmup.n if m else None,
        "stable": m.stability.stable if m else None,
        "warnings": list(m.stability.warnings) if m else [],
        "notes": list(m.notes) if m else [],
        "peak_rss_mb": m.peak_rss_mb if m else None,
        "artifact_sha256": c.artifact_sha256,
        "error": c.failure.error if c.failure else None,
        "hint": c.failure.hint if c.failure else None,
        "stage": c.failure.stage if c.failure else None,
        "oversubscribed": c.oversubscribed,
        "origin": origin_of(c),
        "source": c.source,
        "precision": c.run_precision,
        "engine_version": m.engine_version if m else None,
        "map_measured": mm.map if mm else None,
        "map50_measured": mm.map50 if mm else None,
        "map_delta": mm.delta(claims.map) if mm else None,
        "eval_images": mm.images if mm else None,
        "eval_dataset": mm.dataset if mm else None,
    }


def frame(doc: Document) -> Any:
    """The flat rows as a pandas DataFrame (CSV column order).

    >>> frame(doc)["median_ms"].max()  # doctest: +SKIP
    43.6599585
    """
    pd = require("pandas", "bench")
    df = pd.DataFrame(flat_rows(doc), columns=list(CSV_COLUMNS))
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
    rows: Sequence[dict[str, Any]],
    base: Sequence[tuple[str, str]],
    optional: Sequence[tuple[str, str, str]],
) -> list[tuple[str, str]]:
    """``base`` plus the ``optional`` columns ``rows`` need: measured mAP when some cell has
    one, precision when some cell did not run fp32.

    >>> [k for k, _ in columns_for([{"map_measured": 31.0, "precision": "fp32"}],
    ...                            [("map", "mAP"), ("engine", "Engine")], MD_OPTIONAL)]
    ['map', 'map_measured_text', 'engine']
    """
    wanted = {
        "map_measured_text": any(r.get("map_measured") is not None for r in rows),
        "precision": any(r.get("precision", "fp32") != "fp32" for r in rows),
    }
    out = list(base)
    for key, header, after in optional:
        if wanted[key]:
            at = next((i + 1 for i, (k, _) in enumerate(out) if k == after), len(out))
            out.insert(at, (key, header))
    return out


def _display(row: dict[str, Any], *, markdown: bool) -> dict[str, Any]:
    """Formatted cells of one row."""
    out = dict(row)
    out["map_measured_text"] = measured_map_text(row)
    if row["status"] == "ok":
        lat = _num(row["median_ms"])
        if not row["stable"]:
            lat += f" {UNSTABLE_MARK}"
        out["latency"] = lat
    else:
        reason = row["error"] or "failed"
        if markdown:
            reason = reason.replace("\n", " ")
        out["latency"] = f"failed: {reason}"
    out["ratio"] = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
    if row["oversubscribed"]:
        out["threads"] = f"{row['threads']} {OVERSUBSCRIBED_MARK}"
    out["p90"] = _num(row["p90_ms"])
    out["std"] = _num(row["std_ms"])
    out["fps"] = _num(row["fps"], 1)
    out["peak_rss_mb"] = _num(row["peak_rss_mb"], 0)
    out["claimed_cpu_ms"] = _num(row["claimed_cpu_ms"], 1)
    for k in ("params_m", "params_m_artifact", "flops_g", "flops_g_artifact", "map", "map50"):
        out[k] = _num(row[k], 1 if k.startswith("map") else 2)
    out["params"] = f"{out['params_m']} / {out['params_m_artifact']}"
    out["flops"] = f"{out['flops_g']} / {out['flops_g_artifact']}"
    if row["postprocess"]:
        out["display"] = f"{row['display']} (w/ postprocess)"
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
    if len(threads) < 2:
        return None
    measured: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for r in flat_rows(doc):
        if r["status"] == "ok":
            engine = r["engine"] if r["precision"] == "fp32" else f"{r['engine']} {r['precision']}"
            key = (_display(r, markdown=True)["display"], r["input_size"] or "-", engine)
            measured.setdefault(key, {})[r["threads"]] = r
    if not measured:
        return None
    base = threads[0]
    headers = ["Model", "Input size", "Engine"]
    headers += [f"{t} thread{'s' if t > 1 else ''}<br><sup>(ms)" for t in threads]
    headers += [f"speed-up<br>{t} vs {base}" for t in threads[1:]]
    body = []
    for key, by_threads in measured.items():
        cells = list(key)
        for t in threads:
            m = by_threads.get(t)
            mark = f" {OVERSUBSCRIBED_MARK}" if m and m["oversubscribed"] else ""
            cells.append(_num(m["median_ms"]) + mark if m else "-")
        a = by_threads.get(base)
        for t in threads[1:]:
            b = by_threads.get(t)
            speedup = a["median_ms"] / b["median_ms"] if a and b and b["median_ms"] else None
            cells.append(f"{speedup:.2f}x" if speedup is not None else "-")
        body.append(cells)
    return headers, body


def upstream_frame(doc: Document, device: str) -> Any:
    """The upstream-layout table as a pandas DataFrame of display strings; the columns are the
    Markdown headers of :data:`MD_COLUMNS` (``{device}`` filled in).

    >>> upstream_frame(doc, "laptop").columns[0]  # doctest: +SKIP
    'Model'
    """
    pd = require("pandas", "bench")
    rows = flat_rows(doc)
    shown = [_display(r, markdown=True) for r in rows]
    columns = columns_for(rows, MD_COLUMNS, MD_OPTIONAL)
    data = {h.format(device=device): [_cell(d[k]) for d in shown] for k, h in columns}
    return pd.DataFrame(data, columns=list(data), dtype=object)


#: captions of the tables that follow the main one
SCALING_CAPTION = "Thread scaling (median latency)"
ENGINES_CAPTION = "Across engines and precisions (fastest first per model and thread count)"


def extra_tables(doc: Document) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables after the main one: thread scaling (several thread counts) and the
    cross-engine table (several engines or precisions), each with its caption.

    >>> [caption for caption, _, _ in extra_tables(doc)]  # doctest: +SKIP
    ['Thread scaling (median latency)']
    """
    out = []
    scaling = scaling_rows(doc)
    if scaling:
        out.append((SCALING_CAPTION, *scaling))
    engines = cross_engine_table(flat_rows(doc))
    if engines:
        out.append((ENGINES_CAPTION, *engines))
    return out


def to_markdown(doc: Document) -> str:
    """The upstream-style Markdown table, thread scaling, the cross-engine table with the
    fastest way to run each model, and notes.

    >>> to_markdown(doc).splitlines()[0][:28]  # doctest: +SKIP
    '| Model | Input size | mAP<s'
    """
    table = upstream_frame(doc, short_device(doc).replace("|", "/"))
    parts = [markdown_table(list(table.columns), table.values.tolist())]
    for caption, headers, body in extra_tables(doc):
        parts.append(f"\n{caption}:\n\n" + markdown_table(headers, body))
    fastest = fastest_lines(flat_rows(doc))
    if fastest and len(combos(flat_rows(doc))) > 1:
        bold = [f"**{head}:**{rest}" for head, rest in (f.split(":", 1) for f in fastest)]
        parts.append("\n" + "\n\n".join(bold) + "\n")
    parts.append("\n" + "\n".join(f"- {n}" for n in notes(doc)) + "\n")
    return "".join(parts)


def _cell(v: Any) -> str:
    return "-" if v is None or v == "" else str(v)


def to_table(doc: Document) -> str:
    """A terminal table (rich), plus notes.

    >>> "Median ms" in to_table(doc)  # doctest: +SKIP
    True
    """
    buf = io.StringIO()
    flat = flat_rows(doc)
    rows = [_display(r, markdown=False) for r in flat]
    columns = columns_for(flat, TABLE_COLUMNS, TABLE_OPTIONAL)
    render_rows(rows, columns, "table", title=f"picozoo bench: {short_device(doc)}", stream=buf)
    if len(combos(flat)) > 1:
        buf.write("".join(f"{line}\n" for line in fastest_lines(flat)))
    buf.write("".join(f"{n}\n" for n in cell_notes(doc)))
    return buf.getvalue()


def to_csv(doc: Document) -> str:
    """The flat rows as CSV (:data:`CSV_COLUMNS`).

    >>> to_csv(doc).splitlines()[0].split(",")[:3]  # doctest: +SKIP
    ['device', 'model', 'model_id']
    """
    return str(frame(doc).to_csv(index=False, lineterminator="\n"))


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
        series_from_rows(flat_rows(doc)),
        title=f"mAP vs latency, measured on {short_device(doc)}",
    )


def html_page(
    title: str,
    tables: Sequence[tuple[str | None, list[str], list[list[str]]]],
    notes_: Sequence[str],
    png: bytes | None,
) -> str:
    """A single self-contained HTML page: tables, notes, and the plot as a base64 data URI.

    >>> html_page("t", [(None, ["A"], [["1"]])], ["a note"], None).count("<td>1</td>")
    1
    """

    def table(headers: list[str], body: list[list[str]]) -> str:
        head = "".join(f"<th>{h}</th>" for h in headers)  # headers are our own trusted HTML
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body
        )
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{rows}</tbody>\n</table>\n"

    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{html.escape(title)}</title>\n",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;"
        "padding:4px 8px;text-align:center}td:first-child{text-align:left}"
        "th{background:#f4f4f4}li{margin:.2em 0}img{max-width:100%}</style>\n</head>\n<body>\n",
        f"<h1>{html.escape(title)}</h1>\n",
    ]
    for caption, headers, body in tables:
        if caption:
            parts.append(f"<h2>{html.escape(caption)}</h2>\n")
        parts.append(table(headers, body))
    if png is not None:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(
            "<h2>mAP vs latency</h2>\n"
            f'<img alt="mAP vs latency" src="data:image/png;base64,{b64}">\n'
        )
    parts.append("<ul>\n" + "".join(f"<li>{html.escape(n)}</li>\n" for n in notes_) + "</ul>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def to_html(doc: Document, png: bytes | None = None) -> str:
    """The Markdown report's tables as one self-contained HTML page with the plot embedded.

    >>> to_html(doc).startswith("<!DOCTYPE html>")  # doctest: +SKIP
    True
    """
    device = short_device(doc)
    table = upstream_frame(doc, html.escape(device))
    tables: list[tuple[str | None, list[str], list[list[str]]]] = [
        ("Latency", list(table.columns), table.values.tolist())
    ]
    tables += extra_tables(doc)
    flat = flat_rows(doc)
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
