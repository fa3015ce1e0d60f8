"""Report formats of a real result: upstream-style Markdown, CSV, HTML with the plot."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import re
import sys
from typing import Any

import pytest
from support.bench_helpers import md_tables

from picozoo.bench.records import Document, Stability
from picozoo.bench.report import (
    CSV_COLUMNS,
    UPSTREAM_HEADERS,
    plot_png,
    render,
    to_html,
    to_markdown,
)
from picozoo.bench.rows import report_rows
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
        # onnxruntime at 1-2 threads is not how upstream measured its claim: no ratio, why
        assert r["measured /<br>claimed"] == "- (claim: paddle, 12 thr)"
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
    flat = [r for r in report_rows(measured_doc) if r.status == "ok"]
    assert [float(r["median_ms"]) for r in ok] == [r.median_ms for r in flat]
    assert {r["threads"] for r in rows} == {"1", "2"}


@pytest.mark.slow
def test_html_is_self_contained_with_plot_and_table(measured_doc: Document) -> None:
    page = to_html(measured_doc)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<table>" in page and "PicoDet-S" in page and "mAP<sup>val<br>0.5:0.95" in page
    m = re.search(r'<img alt="mAP vs latency" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert m, "no embedded PNG"
    assert base64.b64decode(m.group(1)).startswith(PNG_MAGIC)
    assert "http://" not in page and "https://" not in page.replace("https://json", "")
    assert "<script" not in page


@pytest.mark.slow
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


def _relabelled(doc: Document, **changes: Any) -> Document:
    """``doc`` with the cells of registry model picodet-s-416 changed."""
    cells = [
        dataclasses.replace(c, **changes) if c.model_id == "picodet-s-416" else c for c in doc.cells
    ]
    return dataclasses.replace(doc, cells=tuple(cells))


@pytest.mark.slow
def test_thread_scaling_lists_only_measured_combinations(measured_doc: Document) -> None:
    """tiny_conv measured on ONNX Runtime at 64x64, PicoDet-S on Paddle at 416x416: two rows,
    not every name x size x engine (8)."""
    doc = _relabelled(measured_doc, engine="paddle", input_size=(416, 416))
    expected = [["tiny_conv", "64*64", "onnxruntime"], ["PicoDet-S", "416*416", "paddle"]]
    _, scaling, _engines = md_tables(to_markdown(doc))  # two engines: a cross-engine table too
    assert [r[:3] for r in scaling[1:]] == expected
    assert all(r[3] != "-" and r[4] != "-" and r[5].endswith("x") for r in scaling[1:])
    page = to_html(doc)
    section = page[page.index("<h2>Thread scaling") :].split("</table>")[0]
    rows = re.findall(r"<tr>((?:<td>[^<]*</td>)+)</tr>", section)
    assert [re.findall(r"<td>([^<]*)</td>", r)[:3] for r in rows] == expected


def _as_claimed(doc: Document, **changes: Any) -> Document:
    """``doc`` with its cells relabelled as measured the way upstream measured its CPU
    claims (Paddle Inference, fp32, no post-processing; 1 -> 12 threads, 2 -> 24), then
    ``changes`` (a precision is what the relabelled cell computed in, too)."""
    fields = {"engine": "paddle", "precision": "fp32", **changes}

    def relabel(c: Any) -> Any:
        c = dataclasses.replace(c, **{"threads": 12 * c.threads, **fields})
        if c.measured is not None:
            ran = dataclasses.replace(c.measured, executed_precision=fields["precision"])
            c = dataclasses.replace(c, result=ran)
        return c

    return dataclasses.replace(doc, cells=tuple(relabel(c) for c in doc.cells))


def test_oversubscribed_cells_show_no_ratio_to_upstream(measured_doc: Document) -> None:
    doc = _as_claimed(measured_doc)
    doc = dataclasses.replace(
        doc,
        cells=tuple(dataclasses.replace(c, oversubscribed=c.threads == 24) for c in doc.cells),
    )
    main, _ = md_tables(to_markdown(doc))
    header = main[0]
    pico = [dict(zip(header, r, strict=True)) for r in main[1:] if r[0] == "PicoDet-S"]
    assert [(r["Threads"], r["measured /<br>claimed"][-1:]) for r in pico] == [
        ("12", "x"),
        ("24 (*)", "-"),
    ]
    assert [r.ratio is None for r in report_rows(doc) if r.name] == [False, True]


@pytest.mark.slow
def test_the_ratio_to_the_claim_only_under_the_claims_conditions(measured_doc: Document) -> None:
    """measured / claimed only for a cell measured as upstream measured its CPU claim
    (registry: Paddle Inference, 12 threads, fp32, model without post-processing); any other
    cell says which condition differed, in every format."""
    alike = _as_claimed(measured_doc)
    rows = [r for r in report_rows(alike) if r.name and r.threads == 12]
    assert len(rows) == 1 and rows[0].ratio is not None and rows[0].ratio_note is None
    assert abs(rows[0].ratio - rows[0].median_ms / 6.6) < 1e-9  # type: ignore[operator]
    main, _ = md_tables(to_markdown(alike))
    pico = [dict(zip(main[0], r, strict=True)) for r in main[1:] if r[0] == "PicoDet-S"]
    assert pico[0]["measured /<br>claimed"] == f"{rows[0].ratio:.2f}x"

    for changes, why in [
        ({"postprocess": True}, "claim: without post-processing"),
        ({"engine": "onnxruntime"}, "claim: paddle"),
        ({"precision": "bf16", "engine": "openvino"}, "claim: paddle, fp32"),
    ]:
        doc = _as_claimed(measured_doc, **changes)
        row = next(r for r in report_rows(doc) if r.name and r.threads == 12)
        assert (row.ratio, row.ratio_note) == (None, why)
        main, _ = md_tables(to_markdown(doc))
        pico = [dict(zip(main[0], r, strict=True)) for r in main[1:] if "PicoDet-S" in r[0]]
        assert pico[0]["measured /<br>claimed"] == f"- ({why})"
        csv_rows = list(csv.DictReader(io.StringIO(render(doc, "csv"))))
        assert next(r["ratio_note"] for r in csv_rows if r["model"] == "picodet-s-416") == why
        md = to_markdown(doc)
        assert (
            "measured / claimed is given only for a cell measured as upstream measured its CPU "
            "claim (paddle, 12 threads, fp32, model without post-processing)"
        ) in md
        assert "measured / claimed is given only" in to_html(doc)


def test_results_written_before_claims_had_conditions_use_upstreams(
    measured_json: dict[str, Any],
) -> None:
    """A saved result whose claims carry no conditions (written before they did) is read
    with upstream's CPU conditions: its post-processed cell gets no ratio."""
    for c in measured_json["cells"]:
        if c.get("claims"):
            c["claims"].pop("conditions", None)
            c.update(engine="paddle", threads=12, postprocess=True)
    doc = Document.from_json(measured_json, "old.json")
    row = next(r for r in report_rows(doc) if r.name)
    assert (row.ratio, row.ratio_note) == (None, "claim: without post-processing")


def _unstable(doc: Document) -> Document:
    """Every measured cell of ``doc`` flagged unstable, with warnings as results written before
    the advice was said once carry them (the advice repeated in each)."""
    advice = (
        "close other programs, pin the CPU frequency (e.g. `cpupower frequency-set -g "
        "performance`), or raise --min-time"
    )
    warnings = (
        f"unstable: std is 25% of the mean (limit 10%); {advice}",
        "only 3 measured iterations (< 10): raise --min-iters or --min-time",
    )
    cells = []
    for c in doc.cells:
        m = c.measured
        if m is not None:
            stab = Stability(stable=False, warnings=warnings)
            c = dataclasses.replace(c, result=dataclasses.replace(m, stability=stab))
        cells.append(c)
    return dataclasses.replace(doc, cells=tuple(cells))


@pytest.mark.slow
def test_unstable_cells_get_a_mark_each_and_the_advice_once(measured_doc: Document) -> None:
    doc = _unstable(measured_doc)
    md = to_markdown(doc)
    main, _ = md_tables(md)
    lat = next(i for i, h in enumerate(main[0]) if measured_doc.device in h)
    marked = [r[lat] for r in main[1:] if not r[lat].startswith("failed")]
    assert len(marked) == 4 and all(v.endswith(" (!)") for v in marked)
    notes_ = [line for line in md.splitlines() if line.startswith("- ")]
    (line,) = [n for n in notes_ if "(!)" in n]  # one line for all the unstable cells...
    for where in ("tiny_conv / onnxruntime / 1 thr", "picodet-s-416 / onnxruntime / 2 thr"):
        assert (
            f"{where} (std is 25% of the mean (limit 10%), only 3 measured iterations (< 10))"
            in line
        )
    for fmt in ("md", "table", "html"):  # ...and the advice once per report
        assert render(doc, fmt).count("close other programs") == 1, fmt


@pytest.mark.slow
def test_plot_labels_never_overlap() -> None:
    """Points 0.02 ms and 0.1 mAP apart, vertical lines 0.03 ms apart, and upstream's own
    points: no two label boxes overlap (without the placement, they do)."""
    import matplotlib.pyplot as plt

    from picozoo.bench.plot import LABEL_GID, map_vs_latency_figure, upstream_reference

    series = [
        {
            "name": f"pc: onnxruntime, {n} thr",
            "points": [
                {"label": f"PicoDet-S {s}", "latency_ms": 6.6 + i * 0.02, "map": 32.5 - i * 0.1}
                for i, s in enumerate((320, 416, 640))
            ]
            + [{"label": f"file{n}", "latency_ms": 6.7 + n * 0.03, "map": None}],
        }
        for n in (1, 2)
    ]

    def boxes(declutter: bool) -> list[Any]:
        fig = map_vs_latency_figure(series, title="t", declutter=declutter)
        try:
            renderer = fig.canvas.get_renderer()
            texts = [t for t in fig.axes[0].texts if t.get_gid() == LABEL_GID]
            return [t.get_window_extent(renderer) for t in texts]
        finally:
            plt.close(fig)

    def overlapping(bs: list[Any]) -> int:
        return sum(a.overlaps(b) for i, a in enumerate(bs) for b in bs[i + 1 :])

    placed = boxes(True)
    # the two series' identical labels at the same place are drawn once ("(2 points)")
    assert len(placed) == 3 + 2 + len(upstream_reference())
    assert overlapping(placed) == 0
    assert overlapping(boxes(False)) > 0  # the case is real


def test_measured_points_are_labelled_like_upstream_points(measured_doc: Document) -> None:
    from picozoo.bench.plot import series_from_rows, upstream_reference

    labels = {p["label"] for s in series_from_rows(report_rows(measured_doc)) for p in s["points"]}
    assert labels == {"tiny_conv", "PicoDet-S 64"}  # name and input size, as upstream's
    assert "PicoDet-S 416" in [r["label"] for r in upstream_reference()]


def test_methodology_says_how_memory_was_measured(measured_doc: Document) -> None:
    from pathlib import Path

    from picozoo.bench.records import load_document

    assert "own peak resident memory (VmHWM" in to_markdown(measured_doc)
    data = Path(__file__).resolve().parents[1] / "data"
    older = load_document(data / "bench-v0.1-standin-s416.json")  # measured with ru_maxrss
    assert "getrusage peak (ru_maxrss), which can be the peak of the process" in render(older, "md")


@pytest.mark.slow
def test_a_label_naming_two_engines_points_has_neither_engines_colour() -> None:
    """Identical labels at one place are drawn once; when the points are of different engines
    (colours) the label is neutral, else it keeps its engine's colour."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from picozoo.bench.plot import (
        ENGINE_COLORS,
        LABEL_GID,
        MIXED_LABEL_COLOR,
        map_vs_latency_figure,
    )

    def labels(engines: list[str]) -> list[tuple[str, tuple[float, ...]]]:
        series = [
            {"name": f"pc: {e}", "engine": e,
             "points": [{"label": "PicoDet-S 416", "latency_ms": 12.0, "map": 32.5}]}
            for e in engines
        ]  # fmt: skip
        fig = map_vs_latency_figure(series, title="t", reference=[])
        try:
            return [(t.get_text(), to_rgba(t.get_color())) for t in fig.axes[0].texts
                    if t.get_gid() == LABEL_GID]  # fmt: skip
        finally:
            plt.close(fig)

    assert labels(["onnxruntime", "paddle"]) == [
        ("PicoDet-S 416 (2 points)", to_rgba(MIXED_LABEL_COLOR))
    ]
    assert labels(["paddle", "paddle"]) == [
        ("PicoDet-S 416 (2 points)", to_rgba(ENGINE_COLORS["paddle"]))
    ]
