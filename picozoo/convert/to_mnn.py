"""ONNX -> MNN (``model.mnn`` + ``model.io.json``).

The ``mnn`` wheel's ``mnnconvert`` command is a trap: its Python wrapper imports
``MNN.tools.utils.log``, which runs ``pip install -U aliyun-log-python-sdk`` (that downgraded
protobuf and broke ``import onnx`` here) and sends usage data to a remote logging service.
picozoo calls the converter function itself, ``_tools.mnnconvert([...])`` (the compiled
module the wrapper calls too): no subprocess, no pip, no network. Options: ``--precision fp16``
stores fp16 weights (``--fp16``), ``int8`` 8-bit weights (``--weightQuantBits 8``).

>>> mnnconvert_args(Path("m.onnx"), Path("out/model.mnn"), "int8")[-2:]
['--weightQuantBits', '8']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..capture import captured_output
from ..errors import ConversionError, require
from ..runtime.base import short_error
from .to_engine import EngineWriter, check_installed
from .toolchain import dist_version

MNN_FILE = "model.mnn"
PRECISION_ARGS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--weightQuantBits", "8"]}


def mnn_writer() -> EngineWriter:
    """The MNN writer; raises :class:`~picozoo.errors.MissingDependencyError` (exit 11) when
    ``mnn`` or ``onnxruntime`` (the parity reference) is missing."""
    check_installed("_tools", "mnn", package="mnn")
    check_installed("onnxruntime", "mnn")
    tools = {"mnn": dist_version("mnn"), "onnxruntime": dist_version("onnxruntime")}
    return EngineWriter("mnn", MNN_FILE, (), tools, write=_write, naming=_same_name)


def _same_name(_side: str, _index: int, name: str) -> str:
    """MNN keeps the ONNX names (the ``.io.json`` records them all the same)."""
    return name


def mnnconvert_args(onnx_path: Path, out: Path, precision: str) -> list[str]:
    """The converter's argument vector (``argv[0]`` included, as the C++ tool expects)."""
    return [
        "mnnconvert",
        "-f",
        "ONNX",
        "--modelFile",
        str(onnx_path),
        "--MNNModel",
        str(out),
        "--bizCode",
        "picozoo",
        *PRECISION_ARGS[precision],
    ]


def _converter() -> Any:
    """The compiled converter module of the ``mnn`` wheel (never ``MNN.tools.mnnconvert``)."""
    with captured_output():  # it prints the CPU's features when imported
        return require("_tools", "mnn", package="mnn")


def _write(
    onnx_path: Path, staging: Path, shapes: dict[str, list[int]], precision: str
) -> dict[str, Any]:
    tools = _converter()
    out = staging / MNN_FILE
    args = mnnconvert_args(onnx_path, out, precision)
    with captured_output() as log:
        try:
            ok = tools.mnnconvert(args)
        except Exception as e:  # the converter raises RuntimeError on some failures
            ok, error = False, short_error(e)
        else:
            error = ""
    if not ok or not out.is_file() or out.stat().st_size == 0:
        detail = error or log.tail(1) or "no output"
        raise ConversionError(
            f"MNN's converter failed on {onnx_path.name}: {detail}",
            hint="check that MNN supports every op of the model (nothing was cached)",
        )
    shown = mnnconvert_args(Path(onnx_path.name), Path(MNN_FILE), precision)[1:]
    return {"converter": {"call": "_tools.mnnconvert", "args": shown}}
