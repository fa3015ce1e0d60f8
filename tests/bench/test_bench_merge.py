"""Merging results of several devices: one latency column per (device, engine, precision,
threads), each named with its conditions and keeping its marks."""

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
    assert columns == ["laptop (onnxruntime, 1 thr)", "phone (onnxruntime, 1 thr)"]
    assert len(rows) == 3  # tiny_conv, PicoDet-S, missing: one row per model
    headers, body = merged_table(docs)
    lat = [h for h in headers if h.startswith("Latency")]
    assert lat == [
        "Latency<sup><small>CPU, upstream</small></sup><br><sup>(ms)",
        "Latency<sup><small>laptop (onnxruntime, 1 thr)</small></sup><br><sup>(ms)",
        "Latency<sup><small>phone (onnxruntime, 1 thr)</small></sup><br><sup>(ms)",
    ]
    table = {r[0]: dict(zip(headers, r, strict=True)) for r in body}
    laptop_ms = float(table["PicoDet-S"][lat[1]].split()[0])  # "0.39 (!)": marks kept
    phone_ms = float(table["PicoDet-S"][lat[2]].split()[0])
    assert phone_ms == round(laptop_ms * 3, 2) or abs(phone_ms - laptop_ms * 3) < 0.011
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
        "Latency<sup><small>laptop (onnxruntime, 1 thr)</small></sup><br><sup>(ms)",
        "Latency<sup><small>phone (onnxruntime, 1 thr)</small></sup><br><sup>(ms)",
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
        "laptop (onnxruntime, 1 thr)",
        "phone (onnxruntime, 1 thr)",
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "other"}')
    r = run_cli("report", "merge", paths[0], str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.json" in r.stderr


def test_the_same_run_twice_is_merged_once(measured_doc: Document) -> None:
    laptop, phone = two_devices(measured_doc)
    renamed = dataclasses.replace(laptop, device="my laptop")  # same measurements, new label
    assert [c.split(" (")[0] for c in merge_rows([laptop, phone, laptop, renamed])[0]] == [
        "laptop",
        "phone",
    ]
    assert repeated_runs([laptop, phone, laptop, renamed], ["a", "b", "c", "d"]) == [
        "c is the same run as a: merged once",
        "d is the same run as a: merged once",
    ]
    other = dataclasses.replace(laptop, created="2000-01-01T00:00:00+00:00")  # another run
    assert [c.split(" (")[0] for c in merge_rows([laptop, other])[0]] == ["laptop", "laptop #2"]


def _stability(doc: Document, stable: bool) -> Document:
    """``doc`` with its measured cells marked stable or not (as the stability check does)."""
    cells = []
    for c in doc.cells:
        m = c.measured
        if m is not None:
            warnings = () if stable else ("cv 30% > 5%",)
            shaky = dataclasses.replace(m.stability, stable=stable, warnings=warnings)
            c = dataclasses.replace(c, result=dataclasses.replace(m, stability=shaky))
        cells.append(c)
    return dataclasses.replace(doc, cells=tuple(cells))


@pytest.mark.slow
def test_merge_keeps_every_columns_conditions_and_marks(
    tmp_path: Path, measured_doc: Document
) -> None:
    """Issue 18 #7: a.json measured 1 and 2 threads, b.json one combination on another
    device: every column says (engine, threads), b's unstable cells keep their (!)."""
    a = _stability(dataclasses.replace(measured_doc, device="laptop"), True)
    laptop_1thr, _ = two_devices(measured_doc)
    b = _stability(dataclasses.replace(laptop_1thr, device="phone"), False)
    paths = []
    for name, doc in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(doc.to_json())
        paths.append(str(tmp_path / f"{name}.json"))
    r = run_cli("report", "merge", *paths, "--report", "md")
    assert r.returncode == 0, r.stderr
    (table,) = md_tables(r.stdout)
    latency = [h for h in table[0] if h.startswith("Latency") and "upstream" not in h]
    assert latency == [
        "Latency<sup><small>laptop (onnxruntime, 1 thr)</small></sup><br><sup>(ms)",
        "Latency<sup><small>laptop (onnxruntime, 2 thr)</small></sup><br><sup>(ms)",
        "Latency<sup><small>phone (onnxruntime, 1 thr)</small></sup><br><sup>(ms)",
    ]
    rows = {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert rows["PicoDet-S"][latency[2]].endswith(" (!)")
    assert not rows["PicoDet-S"][latency[0]].endswith(" (!)")
    assert (
        "(!) unstable latency" in r.stdout and "PicoDet-S on phone (onnxruntime, 1 thr)" in r.stdout
    )
    r = run_cli("report", "merge", *paths, "--report", "json")
    data = json.loads(r.stdout)
    assert data["columns"][2] == {"name": latency[2].split("<small>")[1].split("</small>")[0],
                                  "device": "phone", "engine": "onnxruntime",
                                  "precision": "fp32", "threads": 1}  # fmt: skip
    picodet = next(row for row in data["rows"] if row["model"] == "PicoDet-S")
    assert picodet["unstable"] == ["phone (onnxruntime, 1 thr)"]
    r = run_cli("report", "merge", *paths, "--report", "csv")
    assert "marks[phone (onnxruntime, 1 thr)]" in r.stdout.splitlines()[0]


def test_a_column_fed_a_real_image_says_so(measured_doc: Document) -> None:
    """Issue 18: a column of cells fed an image (``bench --image``) is not the column of the
    same cells on seeded inputs: its name says which image, and its JSON too."""
    from picozoo.bench.records import FedImage

    laptop, _ = two_devices(measured_doc)
    image = FedImage("bus.jpg", "ab" * 32, (1080, 810))
    fed = dataclasses.replace(
        laptop, device="pc", cells=tuple(dataclasses.replace(c, image=image) for c in laptop.cells)
    )
    columns, _ = merge_rows([laptop, fed])
    assert columns == ["laptop (onnxruntime, 1 thr)", "pc (onnxruntime, 1 thr, image bus.jpg)"]
    data = json.loads(render_merged([laptop, fed], "json"))
    assert "image" not in data["columns"][0] and data["columns"][1]["image"] == "bus.jpg"
