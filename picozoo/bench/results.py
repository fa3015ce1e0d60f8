"""The ``picozoo.bench/1`` result document: building it, its JSON Schema, and validation.

A document holds the environment, the run settings and one *cell* per (model, engine,
threads), with every raw sample (integer nanoseconds) so results can be re-analysed later.
``jsonschema`` is not a dependency: :func:`validate` implements the subset of JSON Schema that
:data:`SCHEMA` uses (type, required, properties, additionalProperties, items, enum, const,
minimum, minItems).

>>> problems = validate({"schema": "picozoo.bench/1"})
>>> problems[0]
"$: missing required property 'created'"
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import PicozooError
from . import SCHEMA as SCHEMA_ID

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}
_STATS = {
    "type": "object",
    "required": ["n", "median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms", "min_ms", "max_ms"],
    "properties": {
        "n": {"type": "integer", "minimum": 1},
        **{
            k: {"type": "number", "minimum": 0}
            for k in ("median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms", "min_ms", "max_ms")
        },
        "fps": _NUM_OR_NULL,
    },
}
_CELL = {
    "type": "object",
    "required": ["model", "engine", "threads", "status", "postprocess"],
    "properties": {
        "model": {"type": "string"},
        "model_id": _STR_OR_NULL,
        "name": _STR_OR_NULL,
        "family": _STR_OR_NULL,
        "source": _STR_OR_NULL,
        "artifact_sha256": _STR_OR_NULL,
        "postprocess": {"type": "boolean"},
        "engine": {"type": "string", "enum": ["onnxruntime", "paddle"]},
        "threads": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": ["ok", "failed"]},
        "stage": _STR_OR_NULL,
        "error": _STR_OR_NULL,
        "hint": _STR_OR_NULL,
        "input_size": {"type": ["array", "null"], "items": {"type": "integer"}},
        "claims": {"type": ["object", "null"]},
        "modelinfo": {"type": ["object", "null"]},
        "engine_version": _STR_OR_NULL,
        "engine_settings": {"type": "object"},
        "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape"]}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "load_ms": _NUM,
        "first_inference_ms": _NUM,
        "warmup": {
            "type": "object",
            "required": ["n", "stable", "samples_ns"],
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "stable": {"type": "boolean"},
                "samples_ns": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
        },
        "samples_ns": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
        "stats": _STATS,
        "stability": {
            "type": "object",
            "required": ["stable", "warnings"],
            "properties": {
                "stable": {"type": "boolean"},
                "warnings": {"type": "array", "items": {"type": "string"}},
            },
        },
        "peak_rss_mb": _NUM,
        "wall_s": _NUM,
    },
}
#: JSON Schema (draft 2020-12 subset) of a ``picozoo.bench/1`` document.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://picozoo/schemas/picozoo.bench-1.json",
    "title": "picozoo benchmark result",
    "type": "object",
    "required": ["schema", "created", "device", "environment", "settings", "cells"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "created": {"type": "string"},
        "device": {"type": "string"},
        "environment": {
            "type": "object",
            "required": ["cpu_model", "logical_cores", "versions"],
            "properties": {
                "cpu_model": {"type": "string"},
                "logical_cores": {"type": "integer", "minimum": 1},
                "physical_cores": {"type": ["integer", "null"]},
                "versions": {"type": "object"},
            },
        },
        "settings": {
            "type": "object",
            "required": ["warmup", "min_iters", "min_time_s"],
            "properties": {
                "warmup": {"type": ["string", "integer"]},
                "min_iters": {"type": "integer", "minimum": 1},
                "min_time_s": {"type": "number", "minimum": 0},
            },
        },
        "cells": {"type": "array", "items": _CELL},
    },
}
#: Fields an ``ok`` cell must have on top of the schema's.
OK_REQUIRED = ("samples_ns", "stats", "stability", "load_ms", "first_inference_ms", "warmup")

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class ResultFileError(PicozooError):
    """A result file that cannot be read or is not a valid ``picozoo.bench/1`` document."""

    exit_code = 2


def check_schema(data: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Problems of ``data`` against a JSON Schema subset; empty when it conforms.

    >>> check_schema({"a": 1}, {"type": "object", "properties": {"a": {"type": "string"}}})
    ['$.a: expected string, got int']
    """
    problems: list[str] = []
    if "const" in schema and data != schema["const"]:
        return [f"{where}: expected {schema['const']!r}, got {data!r}"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(data, t) for t in types):
            return [f"{where}: expected {' or '.join(types)}, got {type(data).__name__}"]
    if "enum" in schema and data not in schema["enum"]:
        problems.append(f"{where}: {data!r} is not one of {schema['enum']}")
    if "minimum" in schema and _is(data, "number") and data < schema["minimum"]:
        problems.append(f"{where}: {data!r} is below the minimum {schema['minimum']}")
    if isinstance(data, dict):
        for key in schema.get("required", []):
            if key not in data:
                problems.append(f"{where}: missing required property {key!r}")
        props = schema.get("properties", {})
        for key, value in data.items():
            if key in props:
                problems += check_schema(value, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected property {key!r}")
    if isinstance(data, list):
        if len(data) < schema.get("minItems", 0):
            problems.append(f"{where}: needs at least {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(data):
                problems += check_schema(item, schema["items"], f"{where}[{i}]")
    return problems


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[type_name])


def validate(doc: Any) -> list[str]:
    """Every problem of a result document (schema + the rules JSON Schema cannot say)."""
    problems = check_schema(doc, SCHEMA)
    if problems or not isinstance(doc, dict):
        return problems
    for i, cell in enumerate(doc["cells"]):
        if cell["status"] == "ok":
            problems += [
                f"$.cells[{i}]: an ok cell needs {k!r}" for k in OK_REQUIRED if k not in cell
            ]
            if (
                "stats" in cell
                and "samples_ns" in cell
                and cell["stats"]["n"] != len(cell["samples_ns"])
            ):
                problems.append(f"$.cells[{i}]: stats.n does not match the number of samples")
        elif not cell.get("error"):
            problems.append(f"$.cells[{i}]: a failed cell needs an 'error'")
    return problems


def make_cell(
    target: Any, result: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A document cell from a :class:`~picozoo.bench.targets.Target` and a worker result."""
    model = target.model
    cell: dict[str, Any] = {
        "model": target.label,
        "model_id": model.id if model else None,
        "name": model.name if model else None,
        "family": model.family if model else None,
        "source": str(target.path) if target.path else None,
        "postprocess": bool(target.postprocess),
        "engine": target.engine,
        "threads": int(result.get("threads") or (extra or {}).get("threads") or 1),
        "input_size": list(target.input_size) if target.input_size else None,
        "claims": _claims(model) if model else None,
    }
    cell.update(extra or {})
    if result.get("ok"):
        cell["status"] = "ok"
        for key in (
            "engine_version",
            "engine_settings",
            "inputs",
            "notes",
            "load_ms",
            "first_inference_ms",
            "warmup",
            "samples_ns",
            "stats",
            "stability",
            "peak_rss_mb",
            "wall_s",
        ):
            if key in result:
                cell[key] = result[key]
        measured = _image_size(result.get("inputs") or [])
        if measured is not None:
            cell["input_size"] = measured  # what was actually fed
    else:
        cell.update(
            status="failed",
            stage=result.get("stage"),
            error=result.get("error") or "unknown failure",
            hint=result.get("hint"),
        )
    return cell


def _claims(model: Any) -> dict[str, Any]:
    c = model.claims
    return {
        "map": c.map,
        "map50": c.map50,
        "params_m": c.params_m,
        "flops_g": c.flops_g,
        "latency_ms": dict(c.latency_ms),
    }


def _image_size(inputs: Sequence[dict[str, Any]]) -> list[int] | None:
    for i in inputs:
        shape = i.get("shape") or []
        if len(shape) == 4:
            return [int(shape[2]), int(shape[3])]
    return None


def make_document(
    cells: list[dict[str, Any]],
    environment: dict[str, Any],
    settings: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """The full ``picozoo.bench/1`` document."""
    return {
        "schema": SCHEMA_ID,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "environment": environment,
        "settings": settings,
        "cells": cells,
    }


def load_document(path: Path) -> dict[str, Any]:
    """Read and validate a saved result; raises :class:`ResultFileError` with a hint."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ResultFileError(
            f"cannot read {path}: {e.strerror or e}", hint="check the path"
        ) from None
    except ValueError as e:
        raise ResultFileError(
            f"{path} is not JSON ({e})",
            hint="pass a file written by `picozoo bench --report json`",
        ) from None
    problems = validate(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultFileError(
            f"{path} is not a valid {SCHEMA_ID} result: {problems[0]}{more}",
            hint="pass a file written by `picozoo bench --report json`",
        )
    return doc
