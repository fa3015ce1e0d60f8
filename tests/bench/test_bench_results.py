"""The picozoo.bench/1 document of a real run validates; broken ones do not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from picozoo.bench.results import SCHEMA, ResultFileError, check_schema, load_document, validate


def test_real_result_validates(measured_doc: dict[str, Any]) -> None:
    assert validate(measured_doc) == []
    assert measured_doc["schema"] == "picozoo.bench/1"
    ok = [c for c in measured_doc["cells"] if c["status"] == "ok"]
    failed = [c for c in measured_doc["cells"] if c["status"] == "failed"]
    assert len(ok) == 4 and len(failed) == 2
    for c in ok:
        assert len(c["samples_ns"]) == c["stats"]["n"] >= 15
        assert all(isinstance(s, int) and s > 0 for s in c["samples_ns"])
        assert c["artifact_sha256"] and len(c["artifact_sha256"]) == 64
        assert c["engine_settings"]["intra_op_num_threads"] == c["threads"]
    assert "does not exist" in failed[0]["error"]
    env = measured_doc["environment"]
    assert env["logical_cores"] >= 1 and env["versions"]["onnxruntime"]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.update(schema="picozoo.bench/0"), "$.schema: expected 'picozoo.bench/1'"),
        (lambda d: d.pop("environment"), "missing required property 'environment'"),
        (lambda d: d["cells"][0].update(threads="two"), "$.cells[0].threads: expected integer"),
        (lambda d: d["cells"][0].update(engine="tensorrt"), "is not one of"),
        (lambda d: d["cells"][0]["samples_ns"].append(-5), "below the minimum 0"),
        (lambda d: d["cells"][0]["samples_ns"].append(1.5), "expected integer, got float"),
        (lambda d: d["cells"][0].pop("stats"), "an ok cell needs 'stats'"),
        (lambda d: d["cells"][0]["samples_ns"].pop(), "stats.n does not match"),
        (lambda d: d["cells"][-1].update(error=None), "a failed cell needs an 'error'"),
        (lambda d: d["settings"].update(min_iters=True), "expected integer, got bool"),
    ],
)
def test_broken_documents_fail_validation(
    measured_doc: dict[str, Any], breakage: Any, expected: str
) -> None:
    doc = copy.deepcopy(measured_doc)
    breakage(doc)
    problems = validate(doc)
    assert any(expected in p for p in problems), problems


def test_schema_is_a_json_schema_dict() -> None:
    json.dumps(SCHEMA)
    assert SCHEMA["properties"]["schema"] == {"const": "picozoo.bench/1"}
    assert check_schema([1, "a"], {"type": "array", "items": {"type": "integer"}}) == [
        "$[1]: expected integer, got str"
    ]


def test_load_document_errors(tmp_path: Path, measured_doc: dict[str, Any]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(measured_doc))
    assert load_document(good)["device"] == measured_doc["device"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**measured_doc, "cells": "nope"}))
    with pytest.raises(ResultFileError, match=r"cells: expected array") as e:
        load_document(bad)
    assert e.value.hint and "--report json" in e.value.hint
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ResultFileError, match="is not JSON"):
        load_document(tmp_path / "junk.json")
    with pytest.raises(ResultFileError, match="cannot read"):
        load_document(tmp_path / "absent.json")
