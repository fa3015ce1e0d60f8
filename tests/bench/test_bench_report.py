"""Report formats of a real result: upstream-style Markdown, CSV, HTML with the plot."""

from __future__ import annotations

import base64
import csv
import io
import re
import sys

import pytest
from bench_helpers import md_tables

from picozoo.bench.records import Document
from picozoo.bench.report import (
    CSV_COLUMNS,
    UPSTREAM_HEADERS,
    flat_rows,
    plot_png,
    render,
    to_html,
    to_markdown,
)
from picozoo.errors import MissingDependencyError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_markdown_has_the_upstream_columns_and_measured_beside_claimed(
    measured_doc: Document,
) -> None:
    md = to_markdown(measured_doc)
    main, scaling = md_tables(md)
    header = main[0]
    # upstream's header cells, verbatim and in upstream's order
    positions = [header.index(h) for h in UPSTREAM_HEADERS]
    assert positions == sorted(positions) and positions[0] == 0
    latency = [h for h in header if h.startswith("Latency")]
    assert latency[0] == "Latency<sup><small>CPU, upstream</small></sup><br><sup>(ms)"
    assert measured_doc.device in latency[1]
    assert "Params<br><sup>(M, artifact)" in header and "FLOPS<br><sup>(G, artifact)" in header
    body = [dict(zip(header, r, strict=True)) for r in main[1:]]
    assert len(body) == 6  # 3 targets x 2 thread counts
    pico = [r for r in body if r["Model"] == "PicoDet-S"]
    assert len(pico) == 2
    for r in pico:
        assert r["Input size"] == "64*64"  # what was fed, not the claim
        assert (r["mAP<sup>val<br>0.5:0.95"], r["Params<br><sup>(M)"]) == ("32.5", "1.18")
        assert r[latency[0]] == "6.6"
        measured = float(r[latency[1]].split()[0])
        ratio = r["measured /<br>claimed"]
        assert ratio.endswith("x") and abs(float(ratio[:-1]) - measured / 6.6) < 0.006
    failed = [r for r in body if r["Model"] == "missing"]
    assert failed and all(r[latency[1]].startswith("failed: ") for r in failed)
    # two thread counts -> a thread-scaling table with a speed-up column
    assert scaling[0][:5] == [
        "Model",
        "Input size",
        "Engine",
        "1 thread<br><sup>(ms)",
        "2 threads<br><sup>(ms)",
    ]
    assert scaling[1][-1].endswith("x")
    assert "Measured on " in md and "median of the measured iterations" in md


def test_csv_is_machine_readable(measured_doc: Document) -> None:
    rows = list(csv.DictReader(io.StringIO(render(measured_doc, "csv"))))
    assert list(rows[0]) == CSV_COLUMNS
    ok = [r for r in rows if r["status"] == "ok"]
    flat = [r for r in flat_rows(measured_doc) if r["status"] == "ok"]
    assert [float(r["median_ms"]) for r in ok] == [r["median_ms"] for r in flat]
    assert {r["threads"] for r in rows} == {"1", "2"}


def test_html_is_self_contained_with_plot_and_table(measured_doc: Document) -> None:
    page = to_html(measured_doc)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<table>" in page and "PicoDet-S" in page and "mAP<sup>val<br>0.5:0.95" in page
    m = re.search(r'<img alt="mAP vs latency" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert m, "no embedded PNG"
    assert base64.b64decode(m.group(1)).startswith(PNG_MAGIC)
    assert "http://" not in page and "https://" not in page.replace("https://json", "")
    assert "<script" not in page


def test_plot_png(measured_doc: Document) -> None:
    png = plot_png(measured_doc)
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_terminal_table_and_json(measured_doc: Document) -> None:
    table = render(measured_doc, "table")
    assert "Median ms" in table and "tiny_conv" in table and "failed" in table
    assert render(measured_doc, "json").startswith('{\n "schema": "picozoo.bench/1"')


def test_missing_pandas_or_matplotlib_names_the_extra(
    measured_doc: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    for fmt in ("md", "csv", "html"):
        with pytest.raises(MissingDependencyError, match=r"pandas is not installed.*\[bench\]"):
            render(measured_doc, fmt)
    assert "tiny_conv" in render(measured_doc, "table")  # needs neither
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"matplotlib is not installed.*\[bench\]"):
        plot_png(measured_doc)
