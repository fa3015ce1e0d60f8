"""The ``.io.json`` beside a converted MNN/NCNN model: its inputs and outputs under their ONNX
names, in ONNX order, with the engine's own names and the shapes the conversion used.

NCNN names blobs ``in0..`` / ``out0..`` and drops the batch dimension; MNN keeps the names but
stores no input shapes. The sidecar lets a runtime take ONNX-named feeds and give the outputs
back in the ONNX order and shapes, as every other engine does. A model without one runs under
the engine's names.

>>> m = IoMap([IoTensor("image", "in0", [1, 3, 320, 320])], [IoTensor("scores", "out0", [1, 5])])
>>> m.engine_names("outputs"), io_file(Path("m/model.ncnn.param")).name
(['out0'], 'model.ncnn.io.json')
>>> IoMap.from_dict(m.to_dict()) == m
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ModelFileError
from .base import Runtime, TensorInfo

SCHEMA = "picozoo.io/1"


@dataclass(frozen=True)
class IoTensor:
    """One input or output: ONNX name, engine name, shape (batch 1), numpy dtype name."""

    name: str
    engine_name: str
    shape: list[int]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine_name": self.engine_name,
            "shape": list(self.shape),
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class IoMap:
    """Inputs and outputs of a converted model, in ONNX order."""

    inputs: list[IoTensor]
    outputs: list[IoTensor]

    def engine_names(self, side: str) -> list[str]:
        """The engine's names of ``inputs`` or ``outputs``, in ONNX order."""
        return [t.engine_name for t in getattr(self, side)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IoMap:
        def tensors(key: str) -> list[IoTensor]:
            return [
                IoTensor(
                    str(t["name"]),
                    str(t["engine_name"]),
                    [int(d) for d in t["shape"]],
                    str(t.get("dtype", "float32")),
                )
                for t in data[key]
            ]

        return cls(tensors("inputs"), tensors("outputs"))

    def write(self, path: Path) -> Path:
        """Write the sidecar of the model at ``path``; returns the sidecar's path."""
        out = io_file(path)
        out.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return out


def io_file(model: Path) -> Path:
    """The sidecar of ``model``: same folder and stem, suffix ``.io.json``."""
    return Path(model).with_suffix(".io.json")


def read_io_map(model: Path) -> IoMap | None:
    """The sidecar of ``model``, or None when there is none; a damaged one is a
    :class:`~picozoo.errors.ModelFileError`."""
    path = io_file(model)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
        return IoMap.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFileError(
            f"{path}: not a valid input/output map ({e})",
            hint="convert the model again with `picozoo convert`, or delete the file to run it "
            "under the engine's own names",
        ) from e


@dataclass
class MappedRuntime(Runtime):
    """A runtime whose inputs and outputs come from its :class:`IoMap` (ONNX names, order,
    shapes) when there is one, else from the engine's own names (``input_names`` /
    ``output_names_``, in the engine's order) with :attr:`UNKNOWN_INPUT` shapes."""

    UNKNOWN_INPUT: ClassVar[tuple[int | None, ...]] = (None, 3, None, None)

    io: IoMap | None = None
    input_names: tuple[str, ...] = ()
    output_names_: tuple[str, ...] = ()

    def inputs(self) -> list[TensorInfo]:
        if self.io is not None:
            return [TensorInfo(t.name, list(t.shape), t.dtype) for t in self.io.inputs]
        return [TensorInfo(n, list(self.UNKNOWN_INPUT), "float32") for n in self.input_names]

    def outputs(self) -> list[TensorInfo]:
        if self.io is not None:
            return [TensorInfo(t.name, list(t.shape), t.dtype) for t in self.io.outputs]
        return [TensorInfo(n, [], "float32") for n in self.output_names_]

    def missing_inputs(self, feeds: dict[str, Any]) -> list[str]:
        """The inputs (by :meth:`inputs` name) that ``feeds`` lacks."""
        return [t.name for t in self.inputs() if t.name not in feeds]


def mapped_settings(io: IoMap | None) -> dict[str, Any]:
    """The settings entry recording how outputs were renamed (``{}`` without a map)."""
    return {"outputs": {t.name: t.engine_name for t in io.outputs}} if io is not None else {}
