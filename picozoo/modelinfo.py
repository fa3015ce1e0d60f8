"""What is inside a model file: inputs, outputs, op histogram, parameter count, FLOPs.

Works on ONNX files and on Paddle inference models (a directory, ``model.pdmodel`` or
``model.json``). FLOPs follow the common detector-paper convention: **2 x multiply-accumulates
of the convolution and matrix-multiply ops** (ONNX Conv, ConvTranspose, Gemm, MatMul; Paddle
conv2d, depthwise_conv2d, conv2d_transpose, matmul, mul), at batch 1; element-wise ops, norms
and activations are not counted. Unknown (dynamic) dims are counted as 1.

>>> info = inspect_model(Path("layout_cdla.onnx"))  # doctest: +SKIP
>>> info.op_histogram["Conv"], info.params  # doctest: +SKIP
(102, 1847928)
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelFileError, require

FLOPS_CONVENTION = (
    "FLOPs = 2 x MACs of Conv/ConvTranspose/Gemm/MatMul (Paddle: conv2d, depthwise_conv2d, "
    "conv2d_transpose, matmul, mul) at batch 1; dynamic dims counted as 1"
)


@dataclass
class Tensor:
    name: str
    shape: list[int | str]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype}


@dataclass
class ModelInfo:
    """Summary of one model; ``flops`` follows :data:`FLOPS_CONVENTION`."""

    path: Path
    format: str  # "onnx" or "paddle"
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    op_histogram: dict[str, int] = field(default_factory=dict)
    params: int = 0
    flops: int = 0
    opset: int | None = None
    #: a Paddle-Lite ``.nb``: optimizer version, targets, kernels by target/precision, weights
    #: (see :mod:`picozoo.naive_buffer`); FLOPs are not computed for it (0)
    lite: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {"lite": self.lite} if self.lite is not None else {}
        return {
            "path": str(self.path),
            "format": self.format,
            "opset": self.opset,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "params": self.params,
            "flops": self.flops,
            "flops_convention": FLOPS_CONVENTION,
            "op_histogram": self.op_histogram,
            **extra,
        }


def inspect_model(path: Path) -> ModelInfo:
    """Inspect an ONNX file or a Paddle inference model (directory or model file).

    Raises :class:`~picozoo.errors.ModelFileError` for a file that is not a readable model,
    :class:`~picozoo.errors.MissingDependencyError` when onnx / paddlepaddle is not installed.

    >>> inspect_model(Path("/nonexistent/model.onnx"))
    Traceback (most recent call last):
    ...
    picozoo.errors.ModelFileError: /nonexistent/model.onnx: no such file or directory \
(give an .onnx file or a Paddle model dir)
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(
            f"{path}: no such file or directory", hint="give an .onnx file or a Paddle model dir"
        )
    if path.is_file() and path.suffix == ".onnx":
        return _inspect_onnx(path)
    if path.is_file() and path.suffix == ".nb":
        return _inspect_nb(path)
    if path.is_dir() and not any(path.glob("*.pdmodel")) and len(list(path.glob("*.nb"))) == 1:
        return _inspect_nb(next(path.glob("*.nb")))  # an unpacked lite-* tarball
    if path.is_dir() or path.suffix in (".pdmodel", ".json"):
        return _inspect_paddle(path)
    raise ModelFileError(
        f"{path}: not an ONNX file or a Paddle inference model",
        hint="give an .onnx file, a Paddle inference directory, model.pdmodel or model.json",
    )


# -- Paddle-Lite --------------------------------------------------------------------------------
def _inspect_nb(path: Path) -> ModelInfo:
    """A ``.nb`` read as data (:func:`picozoo.naive_buffer.read_nb_file`): nothing is run."""
    from .naive_buffer import read_nb_file

    nb = read_nb_file(path)
    facts = nb.to_dict()

    def tensor(name: str) -> Tensor:
        var = nb.vars.get(name)
        dims: list[int | str] = [d if d >= 0 else "?" for d in var.dims] if var else []
        return Tensor(name, dims, (var.dtype if var else "") or "float32")

    lite = {k: facts[k] for k in ("opt_version", "meta_version", "targets", "kernels")}
    lite.update(fp16_kernels=nb.fp16_kernels, param_bytes=nb.param_bytes,
                param_dtypes=nb.param_dtypes, weight_tensors=nb.params)  # fmt: skip
    return ModelInfo(
        path=path,
        format="paddle-lite",
        inputs=[tensor(n) for n in nb.feeds],
        outputs=[tensor(n) for n in nb.fetches],
        op_histogram=facts["op_types"],
        params=nb.param_elements,
        flops=0,
        lite=lite,
    )


# -- ONNX ---------------------------------------------------------------------------------------
def _inspect_onnx(path: Path) -> ModelInfo:
    from .onnx_files import check_external_data

    onnx = require("onnx", "convert")
    check_external_data(path)
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise ModelFileError(
            f"{path}: cannot be read as ONNX ({str(e).splitlines()[0][:200]})",
            hint="is the file complete? re-download or re-convert it",
        ) from e
    g = model.graph
    inits = {t.name for t in g.initializer}
    info = ModelInfo(path=path, format="onnx")
    info.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    info.inputs = [_onnx_tensor(v) for v in g.input if v.name not in inits]
    info.outputs = [_onnx_tensor(v) for v in g.output]
    info.op_histogram = dict(Counter(n.op_type for n in g.node).most_common())
    info.params = sum(
        math.prod(t.dims) for t in g.initializer if t.data_type in _ONNX_FLOAT_TYPES
    ) + sum(
        math.prod(a.t.dims)
        for n in g.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value" and a.t.data_type in _ONNX_FLOAT_TYPES and math.prod(a.t.dims) > 1
    )
    info.flops = 2 * _onnx_macs(model)
    return info


_ONNX_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _onnx_tensor(v: Any) -> Tensor:
    import onnx

    tt = v.type.tensor_type
    shape: list[int | str] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim
    ]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name if tt.elem_type else "?"
    return Tensor(v.name, shape, dtype)


def _onnx_macs(model: Any) -> int:
    """MACs of Conv/ConvTranspose/Gemm/MatMul using inferred shapes (dynamic dims set to 1)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    dynamic = False
    for v in m.graph.input:
        for d in v.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = 1
                dynamic = True
    if dynamic:
        m = _fold_shape_ops(m)
    with contextlib.suppress(Exception):
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for v in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        dims = v.type.tensor_type.shape.dim
        shapes[v.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    macs = 0
    for n in m.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        ins = [shapes.get(i) for i in n.input]
        out = shapes.get(n.output[0])
        if not out or len(ins) < 2 or not ins[0] or not ins[1]:
            continue
        x, w = ins[0], ins[1]
        if n.op_type == "Conv":
            macs += math.prod(out) * math.prod(w[1:])
        elif n.op_type == "ConvTranspose":
            macs += math.prod(x) * math.prod(w[1:])
        elif n.op_type == "Gemm":
            trans_a = any(a.name == "transA" and a.i for a in n.attribute)
            macs += math.prod(out) * (x[0] if trans_a else x[-1])
        else:
            macs += math.prod(out) * x[-1]
    return int(macs)


def _fold_shape_ops(model: Any) -> Any:
    """Fold the shape computations (Shape -> Slice -> Concat -> Reshape) of a model whose
    dynamic input dims were just fixed, so shape inference reaches every Conv/MatMul: onnxsim
    when it is installed (the [convert] extra), else the model as it is."""
    try:
        import onnxsim
    except ImportError:
        return model
    from .capture import captured_output

    del model.graph.value_info[:]  # computed for the symbolic dims
    with captured_output(), contextlib.suppress(Exception):
        folded, ok = onnxsim.simplify(model)
        if ok:
            return folded
    return model


# -- Paddle -------------------------------------------------------------------------------------
_PADDLE_SKIP = {"builtin.parameter", "pd_op.data", "pd_op.feed", "pd_op.fetch"}


def _inspect_paddle(path: Path) -> ModelInfo:
    from .capture import captured_output
    from .paddle_dir import find_paddle_model

    files = find_paddle_model(path)
    require("paddle", "convert", package="paddlepaddle")
    with captured_output():
        try:
            program, feed_names, fetch_names = _load_program(files)
        except Exception as e:
            err: Exception | None = e
        else:
            err = None
    if err is not None:
        raise ModelFileError(
            f"{files.model_file}: Paddle cannot load it ({str(err).splitlines()[0][:200]})",
            hint="is it complete? models saved by a newer paddlepaddle need that version to load",
        ) from err
    info = ModelInfo(path=files.model_file, format="paddle")
    hist: Counter[str] = Counter()
    macs = 0
    feeds: dict[str, Tensor] = {}
    fetches: list[Tensor] = []
    for op in program.global_block().ops:
        name = op.name()
        if name == "builtin.parameter":
            info.params += math.prod(_shape(op.results()[0]))
            continue
        if name in ("pd_op.data", "pd_op.feed"):
            r = op.results()[0]
            feeds[op.attrs()["name"]] = Tensor(op.attrs()["name"], _raw_shape(r), _dtype(r))
            continue
        if name == "pd_op.fetch":
            src = op.operands()[0].source()
            fetches.append(Tensor(op.attrs().get("name", "?"), _raw_shape(src), _dtype(src)))
            continue
        if name.startswith("builtin."):
            continue
        hist[name.removeprefix("pd_op.")] += 1
        macs += _paddle_macs(op, name.removeprefix("pd_op."))
    info.inputs = [feeds[n] for n in feed_names if n in feeds] or list(feeds.values())
    for t, real in zip(fetches, fetch_names, strict=False):
        t.name = real or t.name
    info.outputs = fetches
    info.op_histogram = dict(hist.most_common())
    info.flops = 2 * macs
    return info


def _load_program(files: Any) -> tuple[Any, list[str], list[str]]:
    """Load the program (legacy ones translated to PIR) and the feed/fetch names.

    Paddle's global mode is restored afterwards (loading needs static mode).
    """
    import paddle

    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        prefix = str(files.model_file.with_suffix(""))
        if files.format == "legacy":
            with paddle.pir_utils.OldIrGuard():
                prog, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
                fetch_names = [v.name for v in fetches]
            return paddle.pir.translate_to_pir(prog.desc), list(feeds), fetch_names
        with paddle.pir_utils.IrGuard():
            prog, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
        return prog, list(feeds), []
    finally:
        if was_dynamic:
            paddle.disable_static()


def _raw_shape(value: Any) -> list[int | str]:
    try:
        return [d if d >= 0 else "?" for d in value.shape]
    except Exception:
        return []


def _shape(value: Any) -> list[int]:
    try:
        return [d if d > 0 else 1 for d in value.shape]
    except Exception:
        return []


def _dtype(value: Any) -> str:
    try:
        return str(value.dtype).replace("paddle.", "")
    except Exception:
        return "?"


def _paddle_macs(op: Any, name: str) -> int:
    if name not in ("conv2d", "depthwise_conv2d", "conv2d_transpose", "matmul", "mul"):
        return 0
    try:
        x = _shape(op.operands()[0].source())
        w = _shape(op.operands()[1].source())
        out = _shape(op.results()[0])
    except Exception:
        return 0
    if not x or not w or not out:
        return 0
    if name in ("conv2d", "depthwise_conv2d"):
        return math.prod(out) * math.prod(w[1:])
    if name == "conv2d_transpose":
        return math.prod(x) * math.prod(w[1:])
    attrs = op.attrs()
    k = x[-2] if attrs.get("transpose_x") and len(x) >= 2 else x[-1]
    return math.prod(out) * k
