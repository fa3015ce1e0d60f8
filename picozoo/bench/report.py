"""Render ``picozoo.bench/1`` results as a terminal table, Markdown, CSV, JSON or HTML.

The Markdown table reproduces upstream's README layout (Model | Input size | mAP | mAP 0.5 |
Params | FLOPS | Latency), with the Params/FLOPs computed from the benchmarked artifact beside
the claimed ones, and the measured median latency beside upstream's claimed CPU latency, plus
their ratio. Several thread counts add a thread-scaling table.

>>> "mAP<sup>val<br>0.5:0.95" in [h for _, h in MD_COLUMNS]
True
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from typing import Any

from ..render import markdown_table, render_rows

REPORT_FORMATS = ("table", "md", "csv", "json", "html")

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
]


def flat_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat dict per cell: claims, artifact-derived params/FLOPs, statistics, status."""
    rows = []
    for c in doc["cells"]:
        claims = c.get("claims") or {}
        info = c.get("modelinfo") or {}
        stats = c.get("stats") or {}
        size = c.get("input_size")
        claimed = (claims.get("latency_ms") or {}).get("cpu")
        median = stats.get("median_ms") if c["status"] == "ok" else None
        row = {
            "device": doc.get("device"),
            "model": c["model"],
            "model_id": c.get("model_id"),
            "name": c.get("name"),
            "display": c.get("name") or c["model"],
            "input_size": f"{size[0]}*{size[1]}" if size else None,
            "postprocess": c.get("postprocess", False),
            "engine": c["engine"],
            "threads": c["threads"],
            "status": c["status"],
            **{k: stats.get(k) for k in ("median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms")},
            **{k: stats.get(k) for k in ("min_ms", "max_ms", "n", "fps")},
            "claimed_cpu_ms": claimed,
            "ratio": (median / claimed) if (median is not None and claimed) else None,
            "map": claims.get("map"),
            "map50": claims.get("map50"),
            "params_m": claims.get("params_m"),
            "params_m_artifact": info["params"] / 1e6 if info.get("params") is not None else None,
            "flops_g": claims.get("flops_g"),
            "flops_g_artifact": info["flops"] / 1e9 if info.get("flops") is not None else None,
            "load_ms": c.get("load_ms"),
            "first_inference_ms": c.get("first_inference_ms"),
            "warmup_n": (c.get("warmup") or {}).get("n"),
            "stable": (c.get("stability") or {}).get("stable"),
            "warnings": (c.get("stability") or {}).get("warnings", []),
            "notes": list(c.get("notes") or []),
            "peak_rss_mb": c.get("peak_rss_mb"),
            "artifact_sha256": c.get("artifact_sha256"),
            "error": c.get("error"),
            "hint": c.get("hint"),
        }
        rows.append(row)
    return rows


def frame(doc: dict[str, Any]) -> Any:
    """The flat rows as a pandas DataFrame (CSV column order)."""
    import pandas as pd

    return pd.DataFrame(flat_rows(doc), columns=list(CSV_COLUMNS))


def short_device(doc: dict[str, Any]) -> str:
    """The device name used in column headers (``--device`` or the CPU model)."""
    return str(doc.get("device") or doc.get("environment", {}).get("cpu_model") or "this machine")


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _display(row: dict[str, Any], *, markdown: bool) -> dict[str, Any]:
    """Formatted cells of one row."""
    out = dict(row)
    if row["status"] == "ok":
        lat = _num(row["median_ms"])
        if not row["stable"]:
            lat += " (!)"
        out["latency"] = lat
    else:
        reason = row["error"] or "failed"
        if markdown:
            reason = reason.replace("\n", " ")
        out["latency"] = f"failed: {reason}"
    out["ratio"] = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
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


def scaling_rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Thread-scaling table (median ms per thread count, speed-up vs the fewest threads), or
    None when only one thread count was measured."""
    import pandas as pd

    if not doc["cells"]:
        return None
    df = pd.DataFrame(flat_rows(doc))
    ok = df[df["status"] == "ok"]
    threads = sorted(df["threads"].unique().tolist())
    if len(threads) < 2 or ok.empty:
        return None
    piv = ok.pivot_table(
        index=["display", "input_size", "engine"],
        columns="threads",
        values="median_ms",
        aggfunc="median",
        dropna=False,
    )
    base = threads[0]
    headers = ["Model", "Input size", "Engine"]
    headers += [f"{t} thread{'s' if t > 1 else ''}<br><sup>(ms)" for t in threads]
    headers += [f"speed-up<br>{t} vs {base}" for t in threads[1:]]
    body = []
    for (name, size, engine), rec in piv.iterrows():
        cells = [str(name), str(size), str(engine)]
        cells += [_num(rec.get(t)) if pd.notna(rec.get(t)) else "-" for t in threads]
        for t in threads[1:]:
            a, b = rec.get(base), rec.get(t)
            cells.append(f"{a / b:.2f}x" if pd.notna(a) and pd.notna(b) and b else "-")
        body.append(cells)
    return headers, body


def notes(doc: dict[str, Any]) -> list[str]:
    """Footnotes: where/how it was measured, stability warnings, failures."""
    env = doc.get("environment", {})
    s = doc.get("settings", {})
    v = env.get("versions", {})
    out = [
        f"Measured on {env.get('cpu_model')} ({env.get('physical_cores') or '?'} physical / "
        f"{env.get('logical_cores')} logical cores), {doc.get('created')}; onnxruntime "
        f"{v.get('onnxruntime')}, paddlepaddle {v.get('paddlepaddle')}, numpy {v.get('numpy')}, "
        f"Python {v.get('python')}.",
        f"Latency = median of the measured iterations (at least {s.get('min_iters')} and "
        f"{s.get('min_time_s')} s), after warm-up ({s.get('warmup')}); each (model, engine, "
        "threads) in a fresh process; inputs prepared outside the timed region. ONNX Runtime: "
        "intra-op threads = N, inter-op = 1, sequential, all graph optimizations. Paddle "
        "Inference: MKLDNN on, CPU math threads = N.",
        "Upstream CPU latency: Intel Core i7-10750H, Paddle Inference + MKLDNN, 12 threads. "
        "Params/FLOPS (artifact) are computed from the benchmarked file (FLOPs = 2 x MACs).",
    ]
    for r in flat_rows(doc):
        where = f"{r['model']} / {r['engine']} / {r['threads']} thr"
        out += [f"note: {where}: {n}" for n in r["notes"]]
        out += [f"(!) {where}: {w}" for w in r["warnings"]]
        if r["status"] != "ok":
            hint = f" ({r['hint']})" if r.get("hint") else ""
            out.append(f"failed: {where}: {r['error']}{hint}")
    return out


def upstream_frame(doc: dict[str, Any], device: str) -> Any:
    """The upstream-layout table as a pandas DataFrame of display strings; the columns are the
    Markdown headers of :data:`MD_COLUMNS` (``{device}`` filled in)."""
    import pandas as pd

    shown = [_display(r, markdown=True) for r in flat_rows(doc)]
    data = {h.format(device=device): [_cell(d.get(k)) for d in shown] for k, h in MD_COLUMNS}
    return pd.DataFrame(data, columns=list(data), dtype=object)


def to_markdown(doc: dict[str, Any]) -> str:
    """The upstream-style Markdown table, thread scaling, and notes."""
    table = upstream_frame(doc, short_device(doc).replace("|", "/"))
    parts = [markdown_table(list(table.columns), table.values.tolist())]
    scaling = scaling_rows(doc)
    if scaling:
        parts.append("\nThread scaling (median latency):\n\n" + markdown_table(*scaling))
    parts.append("\n" + "\n".join(f"- {n}" for n in notes(doc)) + "\n")
    return "".join(parts)


def _cell(v: Any) -> str:
    return "-" if v is None or v == "" else str(v)


def to_table(doc: dict[str, Any]) -> str:
    """A terminal table (rich), plus notes."""
    buf = io.StringIO()
    rows = [_display(r, markdown=False) for r in flat_rows(doc)]
    render_rows(
        rows, TABLE_COLUMNS, "table", title=f"picozoo bench: {short_device(doc)}", stream=buf
    )
    buf.write("\n".join(notes(doc)[3:]) + ("\n" if len(notes(doc)) > 3 else ""))
    return buf.getvalue()


def to_csv(doc: dict[str, Any]) -> str:
    return str(frame(doc).to_csv(index=False, lineterminator="\n"))


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def plot_png(doc: dict[str, Any]) -> bytes:
    """The mAP-vs-latency plot of one result document."""
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
    """A single self-contained HTML page: tables, notes, and the plot as a base64 data URI."""

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


def to_html(doc: dict[str, Any], png: bytes | None = None) -> str:
    """The Markdown report's tables as one self-contained HTML page with the plot embedded."""
    device = short_device(doc)
    table = upstream_frame(doc, html.escape(device))
    tables: list[tuple[str | None, list[str], list[list[str]]]] = [
        ("Latency", list(table.columns), table.values.tolist())
    ]
    scaling = scaling_rows(doc)
    if scaling:
        tables.append(("Thread scaling (median latency)", *scaling))
    return html_page(
        f"picozoo bench: {device}", tables, notes(doc), png if png is not None else plot_png(doc)
    )


def render(doc: dict[str, Any], fmt: str) -> str:
    """The report of ``doc`` in ``fmt`` (one of :data:`REPORT_FORMATS`)."""
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
