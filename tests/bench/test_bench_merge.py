"""Merging results of several devices: one latency column per device."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from bench_helpers import md_tables, run_cli

from picozoo.bench.merge import merge_rows, merged_table, render_merged


def two_devices(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The real result as measured by a 'laptop' and (scaled by 3) a 'phone', 1 thread each."""
    laptop = copy.deepcopy(doc)
    laptop["device"] = "laptop"
    laptop["cells"] = [c for c in laptop["cells"] if c["threads"] == 1]
    phone = copy.deepcopy(laptop)
    phone["device"] = "phone"
    for c in phone["cells"]:
        if c["status"] == "ok":
            c["stats"]["median_ms"] *= 3
    return [laptop, phone]


def test_one_latency_column_per_device(measured_doc: dict[str, Any]) -> None:
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


def test_several_combos_of_one_device_get_their_own_columns(measured_doc: dict[str, Any]) -> None:
    columns, _ = merge_rows([measured_doc])
    dev = measured_doc["device"]
    assert columns == [f"{dev} (onnxruntime, 1 thr)", f"{dev} (onnxruntime, 2 thr)"]


def test_merge_cli(tmp_path: Path, measured_doc: dict[str, Any]) -> None:
    paths = []
    for d in two_devices(measured_doc):
        p = tmp_path / f"{d['device']}.json"
        p.write_text(json.dumps(d))
        paths.append(str(p))
    r = run_cli("report", "merge", *paths, "--report", "md")
    assert r.returncode == 0, r.stderr
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
