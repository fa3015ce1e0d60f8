"""Merging results of several devices: one latency column per device."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.bench_helpers import md_tables, run_cli

from picozoo.bench.merge import merge_rows, merged_table, render_merged, repeated_runs
from picozoo.bench.records import Document


def two_devices(doc: Document) -> list[Document]:
    """The real result as measured by a 'laptop' and (3 times slower) a 'phone', 1 thread."""
    laptop = dataclasses.replace(
        doc, device="laptop", cells=tuple(c for c in doc.cells if c.threads == 1)
    )
    phone_cells = []
    for c in laptop.cells:
        m = c.measured
        if m is not None:
            stats = dataclasses.replace(m.stats, median_ms=m.stats.median_ms * 3)
            c = dataclasses.replace(c, result=dataclasses.replace(m, stats=stats))
        phone_cells.append(c)
    return [laptop, dataclasses.replace(laptop, device="phone", cells=tuple(phone_cells))]


def test_one_latency_column_per_device(measured_doc: Document) -> None:
    docs = two_devices(measured_doc)
    columns, rows = merge_rows(docs)
    assert columns == ["laptop", "phone"]
    assert len(rows) == 3  # tiny_conv, PicoDet-S, missing: one row per model
    headers, body = merged_table(docs)
    lat = [h for h in headers if h.startswith("Latency")]
    assert lat == [
        "Latency<sup><small>CPU, upstream</small></sup><br><sup>(ms)",
        "Latency<sup><small>laptop</small></sup><br><sup>(ms)",
        "Latency<sup><small>phone</small></sup><br><sup>(ms)",
    ]
    table = {r[0]: dict(zip(headers, r, strict=True)) for r in body}
    laptop_ms = float(table["PicoDet-S"][lat[1]])
    assert (
        float(table["PicoDet-S"][lat[2]]) == round(laptop_ms * 3, 2)
        or abs(float(table["PicoDet-S"][lat[2]]) - laptop_ms * 3) < 0.011
    )
    assert table["missing"][lat[1]] == "failed"


def test_several_combos_of_one_device_get_their_own_columns(measured_doc: Document) -> None:
    columns, _ = merge_rows([measured_doc])
    dev = measured_doc.device
    assert columns == [f"{dev} (onnxruntime, 1 thr)", f"{dev} (onnxruntime, 2 thr)"]


@pytest.mark.slow
def test_merge_cli(tmp_path: Path, measured_doc: Document) -> None:
    paths = []
    for d in two_devices(measured_doc):
        p = tmp_path / f"{d.device}.json"
        p.write_text(d.to_json())
        paths.append(str(p))
    copy = tmp_path / "copy.json"  # the laptop's run again, under another name
    copy.write_text(Path(paths[0]).read_text())
    r = run_cli("report", "merge", *paths, str(copy), "--report", "md")
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"warning: {copy} is the same run as {paths[0]}: merged once\n"
    (table,) = md_tables(r.stdout)
    assert [h for h in table[0] if "laptop" in h or "phone" in h] == [
        "Latency<sup><small>laptop</small></sup><br><sup>(ms)",
        "Latency<sup><small>phone</small></sup><br><sup>(ms)",
    ]
    r = run_cli(
        "report",
        "merge",
        *paths,
        "--report",
        "html",
        "--out",
        str(tmp_path / "m.html"),
        "--plot",
        str(tmp_path / "m.png"),
    )
    assert r.returncode == 0, r.stderr
    assert "data:image/png;base64," in (tmp_path / "m.html").read_text()
    assert (tmp_path / "m.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads(render_merged(two_devices(measured_doc), "json"))["devices"] == [
        "laptop",
        "phone",
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "other"}')
    r = run_cli("report", "merge", paths[0], str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.json" in r.stderr


def test_the_same_run_twice_is_merged_once(measured_doc: Document) -> None:
    laptop, phone = two_devices(measured_doc)
    renamed = dataclasses.replace(laptop, device="my laptop")  # same measurements, new label
    assert merge_rows([laptop, phone, laptop, renamed])[0] == ["laptop", "phone"]
    assert repeated_runs([laptop, phone, laptop, renamed], ["a", "b", "c", "d"]) == [
        "c is the same run as a: merged once",
        "d is the same run as a: merged once",
    ]
    other = dataclasses.replace(laptop, created="2000-01-01T00:00:00+00:00")  # another run
    assert merge_rows([laptop, other])[0] == ["laptop", "laptop #2"]
