"""Hostile result files (issue 17, items 6, 14, 16): names that would inject HTML, spreadsheet
formulas, Markdown rows or rich markup are escaped in every format; a result file too large,
nested too deeply or not a regular file is refused before it is parsed."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.bench_helpers import md_tables

from picozoo.bench.merge import merged_png, render_merged
from picozoo.bench.records import Document, Environment, load_document
from picozoo.bench.report import html_page, plot_png, render
from picozoo.errors import ResultFileError
from picozoo.render import csv_cell, markdown_table

SAVED = Path(__file__).resolve().parents[1] / "data" / "bench-v0.1-standin-s416.json"
SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3")
BREAKER = "pico|det\n| injected | row |"


def hostile(device: str, names: tuple[str, ...], cpu: str | None = None) -> Document:
    """The saved result with its device, CPU model and cell names replaced."""
    doc = load_document(SAVED)
    env: Environment = doc.environment
    if cpu is not None:
        env = dataclasses.replace(env, cpu_model=cpu)
    renamed = [*names, *(c.name or c.model for c in doc.cells[len(names) :])]
    cells = tuple(
        dataclasses.replace(c, model=n, name=n, model_id=None)
        for c, n in zip(doc.cells, renamed, strict=True)
    )
    return dataclasses.replace(doc, device=device, environment=env, cells=cells)


@pytest.fixture(scope="module")
def scripted() -> Document:
    return hostile(SCRIPT, (SCRIPT, IMG, SCRIPT, IMG), cpu=IMG)


def _no_raw_markup(page: str) -> None:
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.slow
def test_html_escapes_device_cpu_and_model_names_in_every_place(scripted: Document) -> None:
    _no_raw_markup(render(scripted, "html"))
    other = dataclasses.replace(scripted, device="phone", created="2026-01-01T00:00:00+00:00")
    merged = render_merged([scripted, other], "html")
    _no_raw_markup(merged)
    # the device is a header, a note and the CPU model a note: all escaped
    assert "<th>Latency<sup><small>&lt;script&gt;" in merged
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in merged


@pytest.mark.slow
def test_plot_shows_mathtext_in_names_as_text() -> None:
    """``$\\frac{$`` in a device or model name is text, not a mathtext error."""
    doc = hostile("$\\frac{$", ("$x^$", "\\$_{", "$$"))
    assert plot_png(doc).startswith(b"\x89PNG")
    other = dataclasses.replace(doc, device="$", created="2026-01-01T00:00:00+00:00")
    assert merged_png([doc, other]).startswith(b"\x89PNG")


def test_html_page_escapes_title_captions_headers_cells_and_notes() -> None:
    page = html_page(SCRIPT, [(SCRIPT, [SCRIPT], [[SCRIPT]])], [SCRIPT], None)
    assert "<script" not in page and page.count("&lt;script&gt;") == 6


def _formula_cells(text: str) -> list[str]:
    number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
    rows = list(csv.reader(io.StringIO(text)))
    return [c for r in rows for c in r if c[:1] in ("=", "+", "-", "@", "\t", "\r")
            and not number.fullmatch(c)]  # fmt: skip


def test_csv_neutralises_formula_cells_and_keeps_numbers_numeric() -> None:
    doc = hostile("=cmd|'/C calc'!A0", FORMULAS)
    text = render(doc, "csv")
    assert _formula_cells(text) == []
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["model"] for r in rows] == ["'" + f for f in FORMULAS]
    assert {r["device"] for r in rows} == {"'=cmd|'/C calc'!A0"}
    assert all(float(r["median_ms"]) > 0 for r in rows if r["status"] == "ok")  # numbers stay
    merged = render_merged([doc, hostile("@phone", ("x",))], "csv")
    assert _formula_cells(merged) == []


def test_csv_cell_rule() -> None:
    """OWASP's triggers get a leading quote; a plain number (text or not) is not a formula."""
    assert [csv_cell(v) for v in ("=1+1", "+1+1", "-1-1", "@a", "\tx", "\rx")] == [
        "'=1+1", "'+1+1", "'-1-1", "'@a", "'\tx", "'\rx"
    ]  # fmt: skip
    assert [csv_cell(v) for v in ("-3.5", "+2", "-1e-3", -3.5, 7, None, "PicoDet")] == [
        "-3.5", "+2", "-1e-3", -3.5, 7, None, "PicoDet"
    ]  # fmt: skip


def _intact(md: str) -> None:
    for table in md_tables(md):
        widths = {len(re.split(r"(?<!\\)\|", " | ".join(row))) for row in table}
        assert len(widths) == 1, table
    assert "| injected | row |" not in md
    assert "\n# " not in md


def test_markdown_keeps_tables_and_notes_intact_with_pipes_and_line_breaks() -> None:
    doc = hostile(BREAKER, (BREAKER, BREAKER + "\n# heading", SCRIPT))
    md = render(doc, "md")
    _intact(md)
    assert "<script" not in md and "pico\\|det" in md
    other = dataclasses.replace(doc, device="x|y\nz", created="2026-01-01T00:00:00+00:00")
    _intact(render_merged([doc, other], "md"))


def test_markdown_table_escapes_headers_and_cells() -> None:
    text = markdown_table(["a|b", "<i>"], [["x\ny", "back\\"]])
    assert text.splitlines()[0] == "| a\\|b | &lt;i> |"
    assert text.splitlines()[2] == "| x y | back\\\\ |"  # a trailing \ cannot eat the |


def test_terminal_table_shows_rich_markup_as_text() -> None:
    doc = hostile("[/bold]\x1b]0;owned\x07", ("[/]", "[red]x", "\x1b[2J"))
    table = render(doc, "table")
    assert "[/bold]" in table and "[/]" in table and "\x1b" not in table
    merged = render_merged([doc, hostile("[link=x]", ("[/]",))], "table")
    assert "[link=x]" in merged and "\x1b" not in merged


# -- result files that are too large, too deep or not files ------------------------------------
def test_result_file_size_is_checked_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"pad": "x" * 2000}))
    with pytest.raises(ResultFileError, match=r"too large .*\(2011 bytes; at most 1000\)"):
        load_document(big, max_bytes=1000)
    assert load_document(SAVED, max_bytes=SAVED.stat().st_size).device


def test_result_size_cap_is_settable(tmp_path: Path) -> None:
    """``PICOZOO_MAX_RESULT_BYTES``: the saved result (20 KB) refused under a 10 KB cap."""
    env = {**os.environ, "PICOZOO_MAX_RESULT_BYTES": "10000"}
    r = subprocess.run([sys.executable, "-m", "picozoo", "report", "show", str(SAVED)],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "too large" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("picozoo: error:") == 1


def test_deep_json_is_refused_in_one_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultFileError, match="nested too deeply"):
        load_document(deep)


def test_fifo_or_folder_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    with pytest.raises(ResultFileError, match="not a regular file"):
        load_document(fifo)  # returns at once: nobody writes to it
    with pytest.raises(ResultFileError, match="cannot read"):
        load_document(tmp_path)
