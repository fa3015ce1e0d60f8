"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``).

OpenVINO reads the ONNX itself (``Core.read_model``; not ``ov.convert_model``, whose Python
front end sends usage telemetry, and ``import_openvino`` keeps its import from sending any), the
inputs are fixed to the resolved shapes, and
``ov.save_model`` writes the IR with fp32 weights (``compress_to_fp16`` is on by default in
OpenVINO: picozoo turns it on only for ``--precision fp16``). bf16 is an inference precision,
not a file format: ``--precision bf16`` writes the fp32 IR and reports its parity at bf16.

>>> openvino_writer().output_file, openvino_writer().siblings  # doctest: +SKIP
('model.xml', ('model.bin',))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..capture import captured_output
from ..errors import ConversionError
from ..runtime.base import short_error
from ..runtime.openvino import import_openvino
from .to_engine import EngineWriter, check_installed
from .toolchain import dist_version

XML, BIN = "model.xml", "model.bin"


def openvino_writer() -> EngineWriter:
    """The OpenVINO writer; raises :class:`~picozoo.errors.MissingDependencyError` (exit 11)
    when ``openvino`` or ``onnxruntime`` (the parity reference) is missing."""
    check_installed("openvino", "openvino")
    check_installed("onnxruntime", "openvino")
    tools = {"openvino": dist_version("openvino"), "onnxruntime": dist_version("onnxruntime")}
    return EngineWriter("openvino", XML, (BIN,), tools, write=_write)


def _write(
    onnx_path: Path, staging: Path, shapes: dict[str, list[int]], precision: str
) -> dict[str, Any]:
    ov = import_openvino()
    try:
        with captured_output():
            model = ov.Core().read_model(str(onnx_path))
            model.reshape({name: ov.PartialShape(dims) for name, dims in shapes.items()})
            ov.save_model(model, str(staging / XML), compress_to_fp16=precision == "fp16")
    except Exception as e:  # OpenVINO raises RuntimeError with long messages
        raise ConversionError(
            f"OpenVINO cannot convert {onnx_path.name}: {short_error(e)}",
            hint="check that OpenVINO supports every op of the model (nothing was cached)",
        ) from e
    return {"output": {"weights": "fp16" if precision == "fp16" else "fp32"}}
