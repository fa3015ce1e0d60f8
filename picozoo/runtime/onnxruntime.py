"""ONNX Runtime adapter (CPU execution provider).

Speed settings (bench): intra-op threads = N, inter-op threads = 1, sequential execution, all
graph optimizations. Reference settings (parity): every graph optimization disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EngineError, ModelFileError, require
from .base import Runtime, TensorInfo, short_error

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def session_options(threads: int, *, reference: bool = False, spin: bool = True) -> Any:
    """The ``SessionOptions`` picozoo runs ONNX Runtime with (also used by benchmarks/);
    ``spin=False`` stops idle intra-op threads from busy-waiting (``allow_spinning=0``)."""
    ort = require("onnxruntime", "bench")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if reference
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


@dataclass
class OnnxRuntime(Runtime):
    session: Any = None

    @property
    def version(self) -> str:
        return str(require("onnxruntime", "bench").__version__)

    def inputs(self) -> list[TensorInfo]:
        return [_info(i) for i in self.session.get_inputs()]

    def outputs(self) -> list[TensorInfo]:
        return [_info(o) for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        return list(self.session.run(None, feeds))


def _info(v: Any) -> TensorInfo:
    return TensorInfo(v.name, list(v.shape), _DTYPES.get(v.type, "float32"))


def open_model(
    path: Path, *, threads: int, precision: str, reference: bool, pipelined: bool = False
) -> OnnxRuntime:
    ort = require("onnxruntime", "bench")
    if path.is_dir() or path.suffix != ".onnx":
        raise ModelFileError(
            f"{path} is not an .onnx file",
            hint="ONNX Runtime runs .onnx files; run a Paddle inference dir with --engine paddle",
        )
    from ..onnx_files import check_external_data

    check_external_data(path)
    so = session_options(threads, reference=reference, spin=not pipelined)
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise EngineError(
            f"onnxruntime cannot load {path.name}: {short_error(e)}", hint="check the file"
        ) from e
    settings = {
        "intra_op_num_threads": so.intra_op_num_threads,
        "inter_op_num_threads": so.inter_op_num_threads,
        "execution_mode": str(so.execution_mode),
        "graph_optimization_level": str(so.graph_optimization_level),
        "allow_spinning": not pipelined,
        "providers": sess.get_providers(),
    }
    return OnnxRuntime(
        path=path,
        threads=threads,
        precision=precision,
        settings=settings,
        engine="onnxruntime",
        extra="bench",
        session=sess,
    )
