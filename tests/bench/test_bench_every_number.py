"""Issue 18, "done when": a bench report in md/csv/json/html names for every number its data
set, precision as executed, file and thread conditions, and no comparison joins unlike cells.

A real document: a tiny PicoDet-shaped ONNX (320x320) benched as picodet-s-320 (upstream's
claims) on ONNX Runtime and on OpenVINO (the IR ``eval`` converted), at 1 and 2 threads, plus
an OpenVINO cell at a precision this CPU cannot run (read from its flags: skipped, never
labelled as run). ``picozoo eval`` scored the ONNX on ONNX Runtime with set A and the IR on
OpenVINO with set B (two annotation files: their mAPs must never be compared). A second
document puts both evals on the same set but one with another NMS (``--conf``): not comparable
either. Every format is rendered by the real ``picozoo report show`` and ``report merge``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support.bench_helpers import md_tables, natural_images, run_cli, self_consistency_set
from support.cpu import cpu_flags, has_bf16
from support.engines import need_engine
from support.infer_cfg import infer_cfg

from picozoo.bench.evals import load_evals
from picozoo.bench.records import load_document
from picozoo.bench.suite import run_suite
from picozoo.bench.targets import BenchTarget
from picozoo.hub.registry import load_registry

pytestmark = pytest.mark.slow

MODEL = "picodet-s-320"
FAST = {"warmup": 1, "min_iters": 5, "min_time_s": 0.0}
LABELS = ["a", "b", "c"]
SHA = re.compile(r"\b[0-9a-f]{64}\b")


def _unrunnable() -> str | None:
    """A reduced precision OpenVINO cannot run on this CPU (None: it runs both)."""
    fp16 = any(f in cpu_flags() for f in ("avx512_fp16", "amx_fp16"))
    if not fp16:
        return "fp16"
    return None if has_bf16() else "bf16"


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return {**env, "PICOZOO_CACHE": str(cache)}


def _eval(model: Path, ann: Path, cache: Path, *extra: str) -> dict[str, Any]:
    r = run_cli("eval", str(model), "--coco", str(ann.parent), "--ann", str(ann), "--format",
                "json", *extra, env=_env(cache))  # fmt: skip
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two saved documents (see the module docstring) and their eval results."""
    need_engine("openvino")
    pytest.importorskip("cv2")
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    from support.tiny_detector import build_tiny_detector

    from picozoo.detect.detector import Detector
    from picozoo.paddle_dir import InferConfig
    from picozoo.runtime import load

    root = tmp_path_factory.mktemp("every-number")
    (root / "m").mkdir()
    (root / "m" / "infer_cfg.yml").write_text(infer_cfg((320, 320), LABELS))
    onnx = build_tiny_detector(root / "m" / "tiny.onnx", size=320)
    cfg = InferConfig.load(root / "m" / "infer_cfg.yml")
    reference = Detector(load("onnxruntime", onnx), cfg)
    photos = natural_images()
    set_a = self_consistency_set(reference, root / "a", photos)
    set_b = self_consistency_set(reference, root / "b", dict(list(photos.items())[:2]))
    model = load_registry().get(MODEL)

    def bench(cache: Path, ov_xml: Path, name: str) -> Path:
        size = (320, 320)
        targets = [BenchTarget(MODEL, "onnxruntime", onnx, model=model, input_size=size),
                   BenchTarget(MODEL, "openvino", ov_xml, model=model,
                               input_size=size)]  # fmt: skip
        skip = _unrunnable()
        if skip:
            targets.append(BenchTarget(MODEL, "openvino", ov_xml, model=model,
                                       input_size=size, precision=skip))  # fmt: skip
        doc = run_suite(targets, threads=[1, 2], evals=load_evals(cache), device=name, **FAST)
        path = root / f"{name}.json"
        path.write_text(doc.to_json())
        return path

    # document 1: ONNX Runtime scored on set A, OpenVINO on set B
    one = root / "cache1"
    ort_a = _eval(onnx, set_a, one)
    ov_b = _eval(onnx, set_b, one, "--engine", "openvino")
    xml = Path(ov_b["model_path"])
    # document 2: both on set A, OpenVINO with a higher NMS score threshold
    two = root / "cache2"
    _eval(onnx, set_a, two)
    ov_conf = _eval(onnx, set_a, two, "--engine", "openvino", "--conf", "0.7")
    assert ov_conf["model_path"] != ort_a["model_path"]
    return {
        "unlike_sets": bench(one, xml, "machine-a"),
        "unlike_nms": bench(two, Path(ov_conf["model_path"]), "machine-b"),
        "ort_a": ort_a,
        "ov_b": ov_b,
        "ov_conf": ov_conf,
        "xml": xml,
        "onnx": onnx,
    }


class _Tables(HTMLParser):
    """The tables (rows of cell texts, header row first) and list items of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.items: list[str] = []
        self._cell: list[str] | None = None
        self._item: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "li":
            self._item = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._item is not None:
            self.items.append("".join(self._item).strip())
            self._item = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._item is not None:
            self._item.append(data)


def _show(path: Path, fmt: str) -> str:
    r = run_cli("report", "show", str(path), "--format", fmt)
    assert r.returncode == 0, r.stderr
    return str(r.stdout)


def _notes_md(text: str) -> list[str]:
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def _plain(tables: list[list[list[str]]]) -> list[list[list[str]]]:
    """Tables with their headers as plain text (``Median<br><sup>(ms)`` -> ``Median(ms)``)."""
    return [[[re.sub(r"<[^>]+>", "", h) for h in t[0]], *t[1:]] for t in tables]


def _cell_named(engine: str, precision: str) -> str:
    """How notes name a cell (``picodet-s-320 / openvino`` or ``... / openvino fp16``)."""
    return f"{MODEL} / {engine}" + ("" if precision == "fp32" else f" {precision}")


def _check_tables(tables: list[list[list[str]]], notes: list[str], *, unlike: str) -> None:
    """The main table, thread scaling and cross-engine tables of one rendered report, and its
    notes (see the module docstring)."""
    assert len(tables) == 3, [t[0] for t in tables]
    main, scaling, engines = tables
    head = main[0]
    measured_map = next(h for h in head if "measured" in h)
    ratio = next(h for h in head if h.startswith("measured /"))
    # precision as executed: a Precision column when a cell is not fp32 (the skipped one, on
    # a CPU that cannot run fp16 or bf16), and the notes say what it is and that fp32 is not said
    assert ("Precision" in head) is (_unrunnable() is not None)
    assert any("Precision (fp32 where a table does not say) is what the engine computed in, "
               "read back after loading" in n for n in notes)  # fmt: skip
    for row in main[1:]:
        cells = dict(zip(head, row, strict=True))
        engine, threads = cells["Engine"], cells["Threads"]
        precision = cells.get("Precision", "fp32")
        assert engine in ("onnxruntime", "openvino") and threads in ("1", "2"), cells
        latency = next(
            v for k, v in cells.items() if k.startswith("Latency") and "upstream" not in k
        )
        if latency.startswith("skipped"):  # never labelled as run: it says what runs instead
            assert f"openvino cannot run {precision} on this CPU: it computes in" in latency
            assert cells[measured_map] == "-" and cells[ratio] == "-"
            continue
        float(latency.replace("(!)", ""))
        # the file: a note names the file this (model, engine, precision) benched, with its hash
        benched = [n for n in notes if n.startswith(f"benched {_cell_named(engine, precision)}:")]
        assert len(benched) == 1 and SHA.search(benched[0]), (cells, notes)
        # the data set of its mAP: named in the cell (not COCO val2017: no difference to 30.6)
        assert re.fullmatch(r"\d+\.\d \(on .+, \d+ images.*\)", cells[measured_map]), cells
        # the claim was measured on paddle, 12 threads: no ratio, and the cell says why
        assert cells[ratio].startswith("- (claim: paddle, 12 thr"), cells
    # thread scaling compares a (model, engine, precision) with itself at other thread counts
    assert scaling[0][:3] == ["Model", "Input size", "Engine"]
    assert {r[2] for r in scaling[1:]} == {"onnxruntime", "openvino"}
    # the cross-engine table: each group is one (model, input size, threads); every mAP names
    # its set; "vs fastest" is a latency ratio within the group
    head = engines[0]
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in engines[1:]:
        cells = dict(zip(head, row, strict=True))
        groups.setdefault((cells["Model"], cells["Input size"], cells["Threads"]), []).append(cells)
        if cells["Median(ms)"] != "skipped":
            mm = next(v for k, v in cells.items() if k.startswith("mAP"))
            assert re.fullmatch(r"\d+\.\d \(on .+, \d+ images.*\)", mm), cells
    assert [k[2] for k in groups] == ["1", "2"]
    for members in groups.values():
        assert {m["Engine"] for m in members} == {"onnxruntime", "openvino"}
    # no mAP joined across unlike sets: not "loses", never a difference to the claim
    assert "are not compared" in unlike
    assert "loses" not in unlike and "within 0.5 mAP" not in unlike


def _fastest(text: str) -> str:
    return " ".join(line for line in text.splitlines() if "Fastest on this machine" in line)


@pytest.mark.parametrize("which", ["unlike_sets", "unlike_nms"])
def test_md_and_html_name_every_numbers_conditions(docs: dict[str, Any], which: str) -> None:
    path = docs[which]
    doc = load_document(path)
    md = _show(path, "md")
    _check_tables(_plain(md_tables(md)), _notes_md(md), unlike=_fastest(md))
    what = "on different data sets" if which == "unlike_sets" else "with different NMS settings"
    assert f"mAPs measured {what} are not compared" in _fastest(md)
    # an unstable median keeps its mark in every table that shows it
    _, scaling, engines = _plain(md_tables(md))
    unstable = {(c.engine, c.threads) for c in doc.cells if c.measured and not
                c.measured.stability.stable}  # fmt: skip
    for row in engines[1:]:
        cells = dict(zip(engines[0], row, strict=True))
        if cells["Median(ms)"] != "skipped":
            marked = (cells["Engine"], int(cells["Threads"])) in unstable
            assert cells["Median(ms)"].endswith(" (!)") is marked, cells
    for row in scaling[1:]:
        for threads, median in ((1, row[3]), (2, row[4])):
            assert median.endswith(" (!)") is ((row[2], threads) in unstable), row
    # each data set is named with its annotation file's sha256 and the cells measured on it
    ann = {docs["ort_a"]["ann_sha256"]: "onnxruntime", docs["ov_b"]["ann_sha256"]: "openvino"}
    sets = [n for n in _notes_md(md) if n.startswith("Data set ")]
    assert len(sets) == 2, sets
    if which == "unlike_sets":
        for sha, engine in ann.items():
            assert any(sha in n and n.endswith(f"{MODEL} / {engine}.") for n in sets), sets
    else:  # the same annotation file, but OpenVINO's eval decoded with --conf 0.7
        nms = [n for n in sets if "NMS score > 0.7, IoU 0.6" in n]
        assert len(nms) == 1 and nms[0].endswith(f"{MODEL} / openvino."), sets
        assert all(docs["ort_a"]["ann_sha256"] in n for n in sets)
        assert "NMS score > 0.7, IoU 0.6)" in md  # the table cell says so too
    page = _Tables()
    page.feed(_show(path, "html"))
    fastest = [n for n in page.items if "Fastest on this machine" in n]
    _check_tables(_plain(page.tables), page.items, unlike=" ".join(fastest))
    assert [n for n in page.items if n not in fastest] == _notes_md(md)  # the same footnotes


@pytest.mark.parametrize("which", ["unlike_sets", "unlike_nms"])
def test_csv_and_json_carry_every_numbers_conditions(docs: dict[str, Any], which: str) -> None:
    path = docs[which]
    rows = list(csv.DictReader(io.StringIO(_show(path, "csv"))))
    data = json.loads(_show(path, "json"))
    assert len(rows) == len(data["cells"]) >= 4
    for row, cell in zip(rows, data["cells"], strict=True):
        assert row["threads"] == str(cell["threads"]) and row["threads"] in ("1", "2")
        assert row["engine"] == cell["engine"]
        if not row["median_ms"]:  # the skipped cell: no number, and what it was asked
            assert row["status"] == "failed" and "cannot run" in row["error"]
            assert cell["stage"] == "skipped"
            continue
        # precision as executed, read back from the engine
        assert row["precision"] == cell["executed_precision"] == "fp32"
        assert cell["engine_settings"]["executed_precision"] == "fp32"
        # the file
        assert SHA.fullmatch(row["artifact_sha256"]) and row["artifact_sha256_of"]
        assert row["source"] == cell["source"] and Path(row["source"]).exists()
        # the data set of the mAP, and no difference to the claim (not COCO val2017)
        mm = cell["measured_map"]
        assert row["eval_set"] and row["eval_ann_sha256"] == mm["ann_sha256"]
        assert row["eval_images"] == str(mm["images"]) and mm["dataset_name"] == "ann.json"
        assert row["map_delta"] == "" and row["eval_coco_val2017"] == "False"
        # the claim was measured under other conditions: no ratio, the reason instead
        assert row["ratio"] == "" and row["ratio_note"].startswith("claim: paddle, 12 thr")
    by_engine = {r["engine"]: r for r in rows if r["median_ms"]}
    if which == "unlike_nms":
        assert "NMS score > 0.7" in by_engine["openvino"]["eval_set"]
        assert data["cells"][2]["measured_map"]["nms"]["score_threshold"] == 0.7
        assert "nms" not in data["cells"][0]["measured_map"]  # upstream's evaluation NMS
    else:
        assert (
            by_engine["onnxruntime"]["eval_ann_sha256"] != by_engine["openvino"]["eval_ann_sha256"]
        )


def test_merge_names_every_columns_conditions_and_files(docs: dict[str, Any]) -> None:
    paths = [str(docs["unlike_sets"]), str(docs["unlike_nms"])]
    md = run_cli("report", "merge", *paths, "--format", "md")
    assert md.returncode == 0, md.stderr
    (table,) = md_tables(md.stdout)
    latency = [h for h in table[0] if h.startswith("Latency") and "upstream" not in h]
    names = [h.split("<small>")[1].split("</small>")[0] for h in latency]
    skip = _unrunnable()
    expected = [f"{device} ({engine}, {t} thr)" for device in ("machine-a", "machine-b")
                for engine in ["onnxruntime", "openvino"] + ([f"openvino {skip}"] if skip else [])
                for t in (1, 2)]  # fmt: skip
    assert sorted(names) == sorted(expected)
    notes = _notes_md(md.stdout)
    for device in ("machine-a", "machine-b"):
        for engine in ("onnxruntime", "openvino"):
            benched = [n for n in notes if n.startswith(f"{device}: benched {MODEL} / {engine}:")]
            assert len(benched) == 1 and SHA.search(benched[0]), notes
    # merged tables compare no mAP: only upstream's claims are shown, no measured one
    assert "measured" not in " ".join(table[0])
    data = json.loads(run_cli("report", "merge", *paths, "--format", "json").stdout)
    for column in data["columns"]:
        assert {"device", "engine", "precision", "threads"} <= set(column)
    (row,) = data["rows"]
    for name, ms in row["latency"].items():
        assert ms is not None and SHA.fullmatch(row["artifacts"][name]["sha256"])
    rows = list(csv.DictReader(io.StringIO(
        run_cli("report", "merge", *paths, "--format", "csv").stdout)))  # fmt: skip
    for name in row["latency"]:
        assert SHA.fullmatch(rows[0][f"artifact_sha256[{name}]"])
    html = _Tables()
    html.feed(run_cli("report", "merge", *paths, "--format", "html").stdout)
    assert html.items == notes
