"""OpenVINO adapter (CPU plugin): an ``.onnx`` file (read directly) or an IR ``.xml`` + ``.bin``.

Settings: ``INFERENCE_NUM_THREADS`` = N, ``PERFORMANCE_HINT`` = ``LATENCY``, and an explicit
``INFERENCE_PRECISION_HINT``: OpenVINO's default on CPUs with AVX512-BF16/AMX is **bf16**, which
moves PicoDet's distance logits by tenths, so picozoo asks for ``f32`` unless ``bf16``/``fp16``
is chosen. Reference settings (parity) add ``EXECUTION_MODE_HINT`` = ``ACCURACY``. The
precision the compiled model really uses is read back (``compiled_model.get_property(
"INFERENCE_PRECISION_HINT")``) into :attr:`settings` and ``executed_precision``: the plugin
quietly lowers what the CPU cannot run (bf16 and f16 run f32 on an AVX2-only CPU; f16 runs
bf16 on a CPU with AVX512-BF16 but no AVX512-FP16/AMX-FP16), see :func:`executed`.

Telemetry: ``import openvino`` imports its model-conversion front end, which posts a usage event
from a background process (``openvino_telemetry``, on by default). :func:`import_openvino`
imports it with ``openvino_telemetry`` unavailable, so the front end falls back to its no-op stub.

>>> HINTS["fp32"], HINTS["bf16"]
('f32', 'bf16')
>>> executed("bfloat16"), executed("f32")
('bf16', 'fp32')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EngineError, ModelFileError, PicozooError, require
from .base import Runtime, TensorInfo, check_input_shapes, short_error

EXTRA = "openvino"
#: picozoo precision -> OpenVINO INFERENCE_PRECISION_HINT
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
SUFFIXES = (".onnx", ".xml")
#: OpenVINO element type names (``Type.get_type_name()``/``str``) -> picozoo precision
EXECUTED = {
    "f32": "fp32", "float32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "f16": "fp16", "float16": "fp16",
}  # fmt: skip


def executed(hint: Any) -> str:
    """The picozoo precision of an ``INFERENCE_PRECISION_HINT`` read back from a compiled model
    (an OpenVINO ``Type``, or its name); an unknown type is returned as its name.

    >>> executed("<Type: 'float32'>"), executed("f16")
    ('fp32', 'fp16')
    """
    text = str(hint)
    name = text.split("'")[1] if text.startswith("<Type:") and "'" in text else text
    return EXECUTED.get(name.strip().lower(), name)


def import_openvino() -> Any:
    """``openvino``, imported without its usage telemetry (unless something imported
    ``openvino_telemetry`` earlier); :class:`~picozoo.errors.MissingDependencyError` when it
    is not installed."""
    import sys

    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    return require("openvino", EXTRA)


@dataclass
class OpenVinoRuntime(Runtime):
    compiled: Any = None
    request: Any = None

    @property
    def version(self) -> str:
        from importlib import metadata

        return metadata.version("openvino")

    def inputs(self) -> list[TensorInfo]:
        return [_info(p) for p in self.compiled.inputs]

    def outputs(self) -> list[TensorInfo]:
        return [_info(p) for p in self.compiled.outputs]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        results = self.request.infer(feeds)
        # the request reuses its output buffers: copy, as every other adapter returns new arrays
        return [results[p].copy() for p in self.compiled.outputs]


def _info(port: Any) -> TensorInfo:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    dtype = port.get_element_type().to_dtype().name
    return TensorInfo(port.get_any_name(), shape, dtype)


#: runtime-model layers that compute nothing (their precision says nothing of the arithmetic)
_PLUMBING = {"Const", "Input", "Parameter", "Output", "Result", "Reorder", "Reshape"}


def layer_precisions(compiled: Any) -> dict[str, int]:
    """How many computing layers of the compiled model run at each precision (the CPU
    plugin's ``runtimePrecision`` of its runtime model, e.g. ``{"bf16": 40, "f32": 3}``);
    empty when the plugin does not say."""
    counts: dict[str, int] = {}
    try:
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if info["layerType"].astype(str) in _PLUMBING:
                continue
            precision = info["runtimePrecision"].astype(str)
            counts[precision] = counts.get(precision, 0) + 1
    except Exception:  # an older plugin without these keys: the hint alone says what runs
        return {}
    return dict(sorted(counts.items()))


def open_model(
    path: Path, *, threads: int, precision: str, reference: bool, pipelined: bool = False
) -> OpenVinoRuntime:
    if path.is_dir() or path.suffix not in SUFFIXES:
        raise ModelFileError(
            f"{path} is not an .onnx or OpenVINO .xml file",
            hint="OpenVINO runs .onnx and IR .xml files (`picozoo convert MODEL --to openvino`)",
        )
    if path.suffix == ".onnx":
        from ..onnx_files import check_external_data

        check_external_data(path)
    elif not path.with_suffix(".bin").is_file():
        raise ModelFileError(
            f"{path}: its weights {path.with_suffix('.bin').name} are missing",
            hint="keep the .xml and .bin of an OpenVINO IR together",
        )
    ov = import_openvino()
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    if reference:
        config["EXECUTION_MODE_HINT"] = "ACCURACY"
    try:
        core = ov.Core()
        model = core.read_model(str(path))
        # compiling allocates for static shapes: a declared 1x3x100000x200000 is 224 GiB
        check_input_shapes({p.get_any_name(): _info(p).shape for p in model.inputs}, path.name)
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()
    except PicozooError:
        raise
    except Exception as e:  # OpenVINO raises RuntimeError with long multi-line messages
        raise EngineError(
            f"OpenVINO cannot load {path.name}: {short_error(e)}", hint="check the file"
        ) from e
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    ran = executed(hint)
    settings = {
        "device": "CPU",
        "INFERENCE_PRECISION_HINT": str(hint),
        "EXECUTION_MODE_HINT": str(compiled.get_property("EXECUTION_MODE_HINT")),
        "INFERENCE_NUM_THREADS": int(compiled.get_property("INFERENCE_NUM_THREADS")),
        "PERFORMANCE_HINT": str(compiled.get_property("PERFORMANCE_HINT")),
        "NUM_STREAMS": int(compiled.get_property("NUM_STREAMS")),
        "requested": {k: str(v) for k, v in config.items()},
        "layer_precisions": layer_precisions(compiled),
    }
    return OpenVinoRuntime(
        path=path,
        threads=threads,
        precision=precision,
        settings=settings,
        engine="openvino",
        extra=EXTRA,
        executed_precision=ran,
        precision_note=f"INFERENCE_PRECISION_HINT read back from the compiled model: {ran}"
        + ("" if ran == precision else f", asked {HINTS[precision]}"),
        compiled=compiled,
        request=request,
    )
