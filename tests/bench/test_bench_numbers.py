"""Issue 18: every number of a bench report says what it is. mAPs are compared only on the
same data set (#1), each hash says what it is the sha256 of (#8), and the plot reads across
decades of latency, draws a label once per place and marks unstable and oversubscribed
cells (#11). The cells are the real measurements of ``measured_doc``, relabelled."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import run_cli

from picozoo.bench.compare import fastest_lines
from picozoo.bench.records import Cell, Document, MeasuredMap
from picozoo.bench.report import render
from picozoo.bench.rows import report_rows

A = MeasuredMap(ap=0.30, ap50=None, images=4, dataset="a" * 64, ann_file="/d/a.json",
                ann_sha256="a1" * 32, dataset_name="a.json", dataset_images=4)  # fmt: skip
COCO = MeasuredMap(ap=0.31, ap50=0.47, images=5000, dataset="c" * 64,
                   ann_file="/coco/annotations/instances_val2017.json", ann_sha256="c0" * 32,
                   dataset_name="COCO val2017", dataset_images=5000)  # fmt: skip


def _as(c: Cell, engine: str, precision: str, scale: float, mm: MeasuredMap | None) -> Cell:
    """Cell ``c`` as another (engine, precision), its samples scaled, with measured mAP ``mm``."""
    from picozoo.bench.stats import summarize

    m = c.measured
    assert m is not None
    samples = tuple(max(1, int(s * scale)) for s in m.samples_ns)
    m = dataclasses.replace(m, samples_ns=samples, stats=summarize([s / 1e6 for s in samples]))
    return dataclasses.replace(c, engine=engine, precision=precision, result=m, measured_map=mm)


@pytest.fixture()
def pico(measured_doc: Document) -> Cell:
    return next(c for c in measured_doc.cells if c.model_id and c.ok and c.threads == 1)


def test_loses_n_map_only_against_fp32_on_the_same_set(measured_doc: Document, pico: Cell) -> None:
    # the same set: int8 is fastest and loses 2 mAP: the line names the fastest within 0.5
    cells = (
        _as(pico, "paddle", "fp32", 4.0, COCO),
        _as(pico, "openvino", "int8", 1.0, dataclasses.replace(COCO, ap=0.29)),
        _as(pico, "onnxruntime", "fp32", 2.0, COCO),
    )
    doc = dataclasses.replace(measured_doc, cells=cells)
    (line,) = fastest_lines(report_rows(doc))
    assert "it loses 2.0 mAP against fp32 (31.0)" in line
    assert "the fastest within 0.5 mAP is onnxruntime fp32" in line
    assert "mAP 29.0 (-3.5)" in line  # COCO val2017: the difference to upstream's 32.5
    # the fp32 reference on another set: nothing is compared, and the line says so
    cells = (cells[0], cells[1], dataclasses.replace(cells[2], measured_map=A))
    cells = (dataclasses.replace(cells[0], measured_map=A), *cells[1:])
    doc = dataclasses.replace(measured_doc, cells=cells)
    (line,) = fastest_lines(report_rows(doc))
    assert "loses" not in line and "mAPs measured on different data sets are not compared" in line
    md = render(doc, "md")
    assert "30.0 (on a.json, 4 images)" in md and "(+" not in md
    assert "Data set a.json (4 images; /d/a.json, annotations sha256 " + "a1" * 32 in md
    assert "Data set COCO val2017 (5000 images; " in md
    rows = list(csv.DictReader(io.StringIO(render(doc, "csv"))))
    assert [r["eval_coco_val2017"] for r in rows] == ["False", "True", "False"]
    assert [r["map_delta"][:4] for r in rows] == ["", "-3.5", ""]
    assert rows[0]["eval_set"] == "a.json (4 images, annotations sha256 a1a1a1a1a1a1)"


def test_a_coco_subset_is_not_compared_with_the_claim(measured_doc: Document, pico: Cell) -> None:
    subset = dataclasses.replace(COCO, images=500)  # `eval --limit 500`
    doc = dataclasses.replace(measured_doc, cells=(_as(pico, "paddle", "fp32", 1.0, subset),))
    (row,) = report_rows(doc)
    assert row.map_delta is None and row.eval_set == "COCO val2017 (first 500 of 5000 images)"
    assert "31.0 (on COCO val2017, first 500 of 5000 images)" in render(doc, "md")


def test_each_hash_says_what_it_is_of(measured_doc: Document, pico: Cell) -> None:
    tar = "https://paddledet.bj.bcebos.com/deploy/Inference/picodet_s_416_coco_lcnet_non_postprocess.tar"
    folder = dataclasses.replace(
        _as(pico, "paddle", "fp32", 1.0, None),
        source="/cache/unpacked/ab/picodet_s_416_coco_lcnet_non_postprocess",
        origin="upstream",
        artifact_sha256="f0" * 32,
        provenance={"artifact": "inference-nopp", "url": tar, "sha256": "7a" * 32},
    )
    onnx = dataclasses.replace(
        pico, source="/m/model.onnx", origin="file", artifact_sha256="0e" * 32
    )
    doc = dataclasses.replace(measured_doc, cells=(folder, onnx))
    md = render(doc, "md")
    assert (
        "(sha256 of the download picodet_s_416_coco_lcnet_non_postprocess.tar: " + "7a" * 32 + ")"
    ) in md
    assert (
        "sha256 of folder picodet_s_416_coco_lcnet_non_postprocess/ (its files' names and "
        "sha256s): " + "f0" * 32
    ) in md
    assert "file /m/model.onnx; sha256 of model.onnx: " + "0e" * 32 in md
    rows = list(csv.DictReader(io.StringIO(render(doc, "csv"))))
    assert [r["artifact_sha256_of"] for r in rows] == [
        "sha256 of folder picodet_s_416_coco_lcnet_non_postprocess/ (its files' names and sha256s)",
        "sha256 of model.onnx",
    ]


# -- the plot -------------------------------------------------------------------------------------


def _figure(doc: Document, **kw: Any) -> Any:
    from picozoo.bench.plot import map_vs_latency_figure, series_from_rows

    return map_vs_latency_figure(series_from_rows(report_rows(doc)), **kw)


def _labels(fig: Any) -> list[str]:
    from picozoo.bench.plot import LABEL_GID

    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == LABEL_GID]


@pytest.mark.slow
def test_plot_reads_decades_draws_a_label_once_and_marks_cells(
    measured_doc: Document, pico: Cell, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from picozoo.bench.plot import COCO_AXIS, MARKS_NOTE

    stable = dataclasses.replace(pico.measured.stability, stable=True, warnings=())  # type: ignore[union-attr]
    base = dataclasses.replace(pico, result=dataclasses.replace(pico.measured, stability=stable))
    # ten cells of one model at the same latency and mAP (engines x threads), one 200x slower
    same = [
        dataclasses.replace(_as(base, "onnxruntime", "fp32", 1.0, COCO), threads=t)
        for t in range(1, 11)
    ]
    slow = dataclasses.replace(
        _as(base, "paddle", "fp32", 200.0, COCO), threads=12, oversubscribed=True
    )
    shaky = _as(pico, "openvino", "fp32", 3.0, None)
    shaky = dataclasses.replace(shaky, result=dataclasses.replace(
        shaky.measured, stability=dataclasses.replace(stable, stable=False, warnings=("x",))))  # type: ignore[arg-type]  # fmt: skip
    doc = dataclasses.replace(measured_doc, cells=(*same, slow, shaky))
    fig = _figure(doc, reference=[])
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"  # 200x apart
        assert ax.get_ylabel() == COCO_AXIS
        labels = _labels(fig)
        assert labels.count("PicoDet-S 64 (10 points)") == 1  # not ten overprinted labels
        assert "PicoDet-S 64 (*)" in labels  # oversubscribed
        assert "PicoDet-S 64 (!) (10 points)" not in labels and "PicoDet-S 64 (!)" in labels
        assert any(t.get_text() == MARKS_NOTE for t in fig.texts)
    finally:
        plt.close(fig)
    # within a decade: a linear axis from 0, no marks, no note
    doc = dataclasses.replace(measured_doc, cells=tuple(same[:2]))
    fig = _figure(doc, reference=[])
    try:
        assert fig.axes[0].get_xscale() == "linear" and fig.axes[0].get_xlim()[0] == 0
        assert not any(t.get_text() == MARKS_NOTE for t in fig.texts)
    finally:
        plt.close(fig)
    # the real command writes it
    saved = tmp_path / "r.json"
    saved.write_text(dataclasses.replace(measured_doc, cells=(*same, slow, shaky)).to_json())
    r = run_cli("report", "show", str(saved), "--report", "md", "--plot", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
