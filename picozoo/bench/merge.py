"""Combine results from several machines into one table, one latency column per device, the
way upstream combined an i7 laptop (CPU column) and a Snapdragon phone (Lite column).

Rows are models (name, input size, claims); columns are one (device, engine, precision,
threads) each, every one named with its conditions: ``device (engine [precision], N thr)``
(fp32 is not said), whatever the other files hold. The same run passed twice (identical
measurements, whatever its device label) is merged once (:func:`unique_runs`). Cells keep
their marks, explained in the notes: ``(*)`` more threads than their device's usable cores,
``(!)`` an unstable latency.

>>> unique_names(["laptop", "laptop", "phone"])
['laptop', 'laptop #2', 'phone']
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..errors import require
from ..render import markdown_table, render_rows
from .notes import OVERSUBSCRIBED_MARK, UNSTABLE_MARK, benched_file, oversubscription
from .records import Document
from .report import (
    UPSTREAM_HEADERS,
    csv_text,
    html_page,
    latency_header,
    markdown_notes,
    short_device,
)
from .rows import ReportRow, report_rows


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeated ones numbered (``#2``, ``#3``...)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return out


def same_run(a: Document, b: Document) -> bool:
    """True when ``a`` and ``b`` hold the same measurements (their device labels aside).

    >>> same_run(laptop, dataclasses.replace(laptop, device="my laptop"))  # doctest: +SKIP
    True
    """
    return dataclasses.replace(a, device="") == dataclasses.replace(b, device="")


def unique_runs(docs: Sequence[Document]) -> list[Document]:
    """``docs`` without the ones that repeat an earlier run (see :func:`same_run`).

    >>> len(unique_runs([laptop, laptop, phone]))  # doctest: +SKIP
    2
    """
    out: list[Document] = []
    for d in docs:
        if not any(same_run(d, seen) for seen in out):
            out.append(d)
    return out


def repeated_runs(docs: Sequence[Document], paths: Sequence[str]) -> list[str]:
    """One message per file of ``paths`` that repeats the run of an earlier one.

    >>> repeated_runs([laptop, laptop], ["a.json", "b.json"])  # doctest: +SKIP
    ['b.json is the same run as a.json: merged once']
    """
    out = []
    for i, d in enumerate(docs):
        first = next((j for j in range(i) if same_run(d, docs[j])), None)
        if first is not None:
            out.append(f"{paths[i]} is the same run as {paths[first]}: merged once")
    return out


def device_names(docs: Sequence[Document]) -> list[str]:
    """Unique device labels of ``docs`` (see :func:`unique_names`).

    >>> device_names([load_document(Path("laptop.json"))] * 2)  # doctest: +SKIP
    ['laptop', 'laptop #2']
    """
    return unique_names([short_device(d) for d in docs])


def column_name(device: str, r: ReportRow) -> str:
    """A merged column's name: its device and conditions (the image fed, when ``bench
    --image`` fed one instead of seeded random inputs).

    >>> column_name("phone", ReportRow(engine="mnn", precision="fp16", threads=4))
    'phone (mnn fp16, 4 thr)'
    >>> column_name("pc", ReportRow(engine="onnxruntime", threads=2, image="dog.jpg"))
    'pc (onnxruntime, 2 thr, image dog.jpg)'
    """
    image = f", image {r.image}" if r.image else ""
    return f"{device} ({r.engine_label}, {r.threads} thr{image})"


def merged_columns(docs: Sequence[Document]) -> list[dict[str, Any]]:
    """The columns of the merged table with their conditions (name, device, engine,
    precision, threads), in order.

    >>> merged_columns([laptop])[0]["name"], merged_columns([laptop])[0]["threads"]
    ... # doctest: +SKIP
    ('laptop (onnxruntime, 1 thr)', 1)
    """
    docs = unique_runs(docs)
    out: dict[str, dict[str, Any]] = {}
    for name, doc in zip(device_names(docs), docs, strict=True):
        for r in report_rows(doc):
            col = column_name(name, r)
            out.setdefault(col, {"name": col, "device": name, "engine": r.engine,
                                 "precision": r.precision, "threads": r.threads,
                                 **({"image": r.image} if r.image else {})})  # fmt: skip
    return list(out.values())


def merge_rows(docs: Sequence[Document]) -> tuple[list[str], list[dict[str, Any]]]:
    """(latency column names, rows); each row has the model keys, claims and one median per
    column (None where that device did not measure the model or it failed), and the columns
    where its cell is oversubscribed or unstable.

    >>> columns, rows = merge_rows([laptop, phone])  # doctest: +SKIP
    >>> columns  # doctest: +SKIP
    ['laptop (onnxruntime, 1 thr)', 'phone (onnxruntime, 1 thr)']
    """
    docs = unique_runs(docs)
    columns: list[str] = []
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for name, doc in zip(device_names(docs), docs, strict=True):
        for r in report_rows(doc):
            col = column_name(name, r)
            if col not in columns:
                columns.append(col)
            row = rows.setdefault((r.display, r.input_size, r.postprocess), _merged_row(r))
            if r.source or r.artifact_sha256:
                row["artifacts"][col] = {"source": r.source, "sha256": r.artifact_sha256,
                                         "sha256_of": r.artifact_sha256_of}  # fmt: skip
            if r.status == "ok":
                row["latency"][col] = r.median_ms
                if r.oversubscribed:
                    row["oversubscribed"].append(col)
                if r.stable is False:
                    row["unstable"].append(col)
            else:
                row["errors"][col] = r.error
    return columns, list(rows.values())


def _merged_row(r: ReportRow) -> dict[str, Any]:
    """A model's row of the merged table (its JSON form), latencies still to fill in."""
    return {
        "model": r.shown_name,
        "input_size": r.input_size,
        "map": r.map,
        "map50": r.map50,
        "params_m": r.params_m,
        "flops_g": r.flops_g,
        "claimed_cpu_ms": r.claimed_cpu_ms,
        "latency": {},
        "artifacts": {},
        "errors": {},
        "oversubscribed": [],
        "unstable": [],
    }


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _sha256(row: dict[str, Any], column: str) -> str | None:
    """The sha256 of the file a merged row's ``column`` benched (None: not recorded)."""
    sha: str | None = row["artifacts"].get(column, {}).get("sha256")
    return sha


def _marks(row: dict[str, Any], column: str) -> str:
    """`` (!)`` after an unstable latency, `` (*)`` after an oversubscribed one."""
    marks = [UNSTABLE_MARK] if column in row["unstable"] else []
    marks += [OVERSUBSCRIBED_MARK] if column in row["oversubscribed"] else []
    return "".join(f" {m}" for m in marks)


def merged_table(docs: Sequence[Document]) -> tuple[list[str], list[list[str]]]:
    """Markdown headers and body: upstream's columns, claimed CPU, one latency per device.

    >>> headers, body = merged_table([laptop, phone])  # doctest: +SKIP
    >>> headers[-1]  # doctest: +SKIP
    'Latency<sup><small>phone</small></sup><br><sup>(ms)'
    """
    columns, rows = merge_rows(docs)
    headers: list[str] = [*UPSTREAM_HEADERS, latency_header("CPU, upstream")]
    headers += [latency_header(c) for c in columns]
    body = []
    for r in rows:
        cells = [r["model"], r["input_size"] or "-", _fmt(r["map"], 1), _fmt(r["map50"], 1)]
        cells += [_fmt(r["params_m"]), _fmt(r["flops_g"]), _fmt(r["claimed_cpu_ms"], 1)]
        for c in columns:
            if c in r["latency"]:
                cells.append(_fmt(r["latency"][c]) + _marks(r, c))
            else:
                cells.append("failed" if c in r["errors"] else "-")
        body.append(cells)
    return headers, body


def merged_notes(docs: Sequence[Document]) -> list[str]:
    """One line per device (CPU, cores, date, too many threads), one per benched file (which
    file each column's cells ran, and its sha256), then one per failed cell.

    >>> merged_notes([laptop])[0]  # doctest: +SKIP
    'laptop: Intel(R) Core(TM) i7-10750H, 12 logical cores, measured 2026-11-27T17:26:12+00:00'
    """
    docs = unique_runs(docs)
    out = []
    for name, d in zip(device_names(docs), docs, strict=True):
        out.append(
            f"{name}: {d.environment.cpu_model}, {d.environment.logical_cores} logical cores, "
            f"measured {d.created}"
        )
        over = oversubscription(
            [c.threads for c in d.cells if c.oversubscribed], d.environment.cores
        )
        if over:
            out.append(f"{OVERSUBSCRIBED_MARK} {name}: {over}")
    for name, d in zip(device_names(docs), docs, strict=True):
        out += dict.fromkeys(f"{name}: benched {benched_file(c)}" for c in d.cells if c.source)
    rows = merge_rows(docs)[1]
    unstable = [f"{r['model']} on {c}" for r in rows for c in r["unstable"]]
    if unstable:
        out.append(
            f"{UNSTABLE_MARK} unstable latency (see each file's own report): " + "; ".join(unstable)
        )
    for r in rows:
        for col, err in r["errors"].items():
            out.append(f"failed: {r['model']} on {col}: {err}")
    return out


def merged_png(docs: Sequence[Document]) -> bytes:
    """mAP-vs-latency plot with one series per device (and engine/threads).

    >>> merged_png([laptop, phone])[:4]  # doctest: +SKIP
    b'\\x89PNG'
    """
    from .plot import map_vs_latency_png, series_from_rows

    docs = unique_runs(docs)
    series = []
    for name, doc in zip(device_names(docs), docs, strict=True):
        series += series_from_rows(report_rows(doc), device=name)
    return map_vs_latency_png(series, title="mAP vs latency, per device")


#: the keys of a merged row that hold one value per column
_PER_COLUMN = ("latency", "artifacts", "errors", "oversubscribed", "unstable")


def render_merged(docs: Sequence[Document], fmt: str) -> str:
    """The merged table in table|md|csv|json|html.

    >>> print(render_merged([laptop, phone], "md"))  # doctest: +SKIP
    | Model | Input size | mAP<sup>val<br>0.5:0.95 | ...
    """
    headers, body = merged_table(docs)
    if fmt == "md":
        return markdown_table(headers, body) + markdown_notes(merged_notes(docs))
    if fmt == "json":
        columns, rows = merge_rows(docs)
        data = {"devices": columns, "columns": merged_columns(docs), "rows": rows}
        return json.dumps(data, indent=1) + "\n"
    if fmt == "csv":
        pd = require("pandas", "bench")
        columns, rows = merge_rows(docs)
        flat = [
            {
                **{k: v for k, v in r.items() if k not in _PER_COLUMN},
                **{f"latency_ms[{c}]": r["latency"].get(c) for c in columns},
                **{f"marks[{c}]": _marks(r, c).strip() or None for c in columns},
                **{f"artifact_sha256[{c}]": _sha256(r, c) for c in columns},
            }
            for r in rows
        ]
        return csv_text(pd.DataFrame(flat))
    if fmt == "html":
        return html_page(
            "picozoo: merged benchmark",
            [(None, headers, body)],
            merged_notes(docs),
            merged_png(docs),
        )
    if fmt == "table":
        import html
        import io
        import re

        plain = [
            html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", h)).strip()) for h in headers
        ]
        buf = io.StringIO()
        cols = [(str(i), h) for i, h in enumerate(plain)]
        rows_ = [{str(i): v for i, v in enumerate(r)} for r in body]
        render_rows(rows_, cols, "table", title="picozoo: merged benchmark", stream=buf)
        return buf.getvalue()
    raise ValueError(f"unknown report format {fmt!r}")
