"""The picozoo.bench/1 document: a real run and the saved example files load and write back
byte for byte; Document.from_json rejects broken files, naming the file and the first bad
field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from picozoo.bench.records import (
    BenchSpec,
    Document,
    Failure,
    Measurement,
    load_document,
    result_from_json,
    result_to_json,
)
from picozoo.errors import ResultFileError

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_real_result_is_typed_and_round_trips(
    measured_doc: Document, measured_json: dict[str, Any], tiny_onnx: Path
) -> None:
    assert measured_json["schema"] == "picozoo.bench/1"
    assert Document.from_json(measured_json, "r.json") == measured_doc
    ok = [c for c in measured_doc.cells if c.ok]
    failed = [c for c in measured_doc.cells if not c.ok]
    assert len(ok) == 4 and len(failed) == 2
    for c in ok:
        m = c.measured
        assert m is not None and len(m.samples_ns) == m.stats.n >= 15
        assert all(isinstance(s, int) and s > 0 for s in m.samples_ns)
        assert c.artifact_sha256 and len(c.artifact_sha256) == 64
        assert m.engine_settings["intra_op_num_threads"] == c.threads
        assert m.wall_s is not None and m.wall_s > 0
    assert failed[0].model == "missing" and failed[0].failure == Failure(
        "prepare",
        f"{tiny_onnx.parent / 'missing.onnx'}: no such file or directory",
        "give an existing model file/folder, or a model id (`picozoo list`)",
    )
    assert measured_doc.environment.logical_cores >= 1
    assert measured_doc.environment.versions["onnxruntime"]
    assert [c["status"] for c in measured_json["cells"]] == ["ok"] * 4 + ["failed"] * 2
    assert "stats" not in measured_json["cells"][-1] and "stage" not in measured_json["cells"][0]


@pytest.mark.parametrize("name", ["bench-example.json", "bench-standin-s416.json"])
def test_saved_files_load_and_write_back_unchanged(name: str) -> None:
    text = (DOCS / name).read_text(encoding="utf-8")
    doc = load_document(DOCS / name)
    assert doc.to_json() == text
    assert all(c.stats and c.stats.median_ms > 0 for c in doc.cells)


Breakage = Callable[[dict[str, Any]], Any]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.update(schema="picozoo.bench/0"), "$.schema: expected 'picozoo.bench/1'"),
        (lambda d: d.pop("environment"), "$: missing required property 'environment'"),
        (lambda d: d["cells"][0].update(threads="two"), "$.cells[0].threads: expected integer"),
        (lambda d: d["cells"][0].update(threads=0), "$.cells[0].threads: 0 is below the minimum"),
        (lambda d: d["cells"][0].update(engine="tensorrt"), "'tensorrt' is not one of"),
        (lambda d: d["cells"][1].update(status="maybe"), "$.cells[1].status: 'maybe' is not"),
        (lambda d: d["cells"][0]["samples_ns"].append(-5), "samples_ns[15]: -5 is below"),
        (lambda d: d["cells"][0]["samples_ns"].append(1.5), "expected integer, got float"),
        (lambda d: d["cells"][0].pop("stats"), "$.cells[0]: missing required property 'stats'"),
        (lambda d: d["cells"][0]["samples_ns"].pop(), "$.cells[0]: stats.n (15) does not match"),
        (lambda d: d["cells"][0]["stats"].update(p90_ms=None), "p90_ms: expected number, got null"),
        (lambda d: d["cells"][0]["inputs"][0].pop("shape"), "$.cells[0].inputs[0]: missing"),
        (lambda d: d["cells"][-1].update(error=None), "$.cells[5]: a failed cell needs an 'error'"),
        (lambda d: d["settings"].update(min_iters=True), "min_iters: expected integer, got bool"),
        (lambda d: d["settings"].update(warmup="lots"), "'lots' is neither 'auto' nor a count"),
        (lambda d: d.update(cells="nope"), "$.cells: expected array, got str"),
        (lambda d: d["cells"].append([]), "$.cells[6]: expected object, got list"),
    ],
)
def test_broken_documents_are_rejected(
    measured_json: dict[str, Any], breakage: Breakage, expected: str
) -> None:
    measured_json["cells"][0]["samples_ns"] = measured_json["cells"][0]["samples_ns"][:15]
    measured_json["cells"][0]["stats"]["n"] = 15
    Document.from_json(measured_json, "r.json")  # intact: accepted
    breakage(measured_json)
    with pytest.raises(ResultFileError) as e:
        Document.from_json(measured_json, "r.json")
    assert e.value.message.startswith("r.json is not a valid picozoo.bench/1 result: ")
    assert expected in e.value.message
    assert e.value.hint == "pass a file written by `picozoo bench --format json`"
    assert e.value.__cause__ is not None  # chained, not hidden


def test_load_document_errors(tmp_path: Path, measured_json: dict[str, Any]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(measured_json))
    assert load_document(good).device == measured_json["device"]
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ResultFileError, match=r"junk\.json is not JSON") as e:
        load_document(tmp_path / "junk.json")
    assert e.value.hint and "--format json" in e.value.hint
    assert isinstance(e.value.__cause__, ValueError)
    with pytest.raises(ResultFileError, match=r"cannot read .*absent\.json") as e:
        load_document(tmp_path / "absent.json")
    assert isinstance(e.value.__cause__, OSError)


def test_worker_result_and_spec_round_trip(measured_doc: Document) -> None:
    m = measured_doc.cells[0].measured
    assert isinstance(m, Measurement)
    assert result_from_json(json.loads(json.dumps(result_to_json(m)))) == m
    f = Failure("load", "cannot load x.onnx", None)
    assert result_to_json(f) == {
        "ok": False,
        "stage": "load",
        "error": "cannot load x.onnx",
        "hint": None,
    }
    assert result_from_json(result_to_json(f)) == f
    spec = BenchSpec(Path("m.onnx"), "paddle", 2, 5, 10, 0.5, (320, 256), 7)
    assert spec.to_dict() == {
        "path": "m.onnx",
        "engine": "paddle",
        "threads": 2,
        "warmup": 5,
        "min_iters": 10,
        "min_time_s": 0.5,
        "input_size": [320, 256],
        "seed": 7,
        "precision": "fp32",
    }
    assert BenchSpec.from_json(json.loads(json.dumps(spec.to_dict()))) == spec
    # a spec written before precisions existed is fp32; another precision round-trips
    old = {k: v for k, v in spec.to_dict().items() if k != "precision"}
    assert BenchSpec.from_json(old) == spec
    fp16 = BenchSpec(Path("m.xml"), "openvino", 2, precision="fp16")
    assert BenchSpec.from_json(fp16.to_dict()).precision == "fp16"
