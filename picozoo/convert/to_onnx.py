"""Paddle -> ONNX: paddle2onnx, input shapes, onnxsim, onnx.checker, then the parity check.

:func:`onnx_recipe` is what :func:`picozoo.convert.convert` caches in the store; its steps
run in a child process (:mod:`picozoo.native`: an abort of paddle2onnx is one error line);
:func:`convert_paddle_dir_to_onnx` runs the same recipe into a plain folder (no cache).

>>> onnx_options(opset=11, simplify=True, input_shape=None, dynamic_batch=False)["target"]
'onnx'
>>> r = convert_paddle_dir_to_onnx(Path("picodet_dir"), Path("out"))  # doctest: +SKIP
>>> r.path.name, r.provenance.parity_passed  # doctest: +SKIP
('model.onnx', True)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paddle_dir import PaddleModel
from . import toolchain
from .cached import Recipe, convert_into
from .result import ConversionResult
from .sources import Progress, local_source

ONNX_FILE = "model.onnx"
OnnxHook = Callable[[Any], None]


def onnx_options(
    *,
    opset: int,
    simplify: bool,
    input_shape: dict[str, list[int]] | None,
    dynamic_batch: bool | None,
) -> dict[str, Any]:
    """The normalized options of an ONNX conversion (part of the cache key and provenance).
    ``dynamic_batch``: True / False force a symbolic / fixed batch; None follows the Paddle
    model (see :func:`picozoo.convert.shapes.choose_batch`).

    >>> onnx_options(opset=11, simplify=False, input_shape={"image": [1, 3, 320, 320]},
    ...              dynamic_batch=False)["input_shape"]
    {'image': [1, 3, 320, 320]}
    """
    if not 7 <= opset <= 21:
        raise UsageError(f"--opset {opset} is out of range", hint="use an opset from 7 to 21")
    return {
        "target": "onnx",
        "opset": opset,
        "simplify": simplify,
        "input_shape": dict(sorted((input_shape or {}).items())) or None,
        "dynamic_batch": dynamic_batch,
        "parity_seed": 0,
        "pipeline": toolchain.PIPELINE_VERSION,
    }


def onnx_recipe(
    options: dict[str, Any],
    *,
    image_size: tuple[int, int] | None = None,
    onnx_hook: OnnxHook | None = None,
    progress: Progress | None = None,
) -> Recipe:
    """The ONNX recipe for :mod:`picozoo.convert.cached`. ``image_size`` is used for unknown
    H/W when the model has no ``infer_cfg.yml``; ``onnx_hook`` (tests, debugging) gets the
    final ``onnx.ModelProto`` right before the checks, e.g. to tamper with weights.

    >>> opts = onnx_options(opset=11, simplify=True, input_shape=None, dynamic_batch=False)
    >>> r = onnx_recipe(opts)
    >>> r.target, r.output_file, "paddle2onnx" in r.tools
    ('onnx', 'model.onnx', True)
    """
    produce = functools.partial(
        _produce, options=options, image_size=image_size, hook=onnx_hook, say=progress or _quiet
    )
    return Recipe("onnx", ONNX_FILE, options, toolchain.tool_versions(), produce)


def convert_paddle_dir_to_onnx(
    src: Path,
    out_dir: Path,
    *,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool | None = None,
    image_size: tuple[int, int] | None = None,
    onnx_hook: OnnxHook | None = None,
    progress: Progress | None = None,
) -> ConversionResult:
    """Convert the Paddle inference model in ``src`` into ``out_dir/model.onnx`` (+
    ``provenance.json``), written only after every check and the parity check passed.

    >>> convert_paddle_dir_to_onnx(Path("picodet_dir"), Path("out"), opset=13)  # doctest: +SKIP
    ConversionResult(path=PosixPath('out/model.onnx'), ..., cached=False, label='local-picodet_dir')
    """
    options = onnx_options(
        opset=opset, simplify=simplify, input_shape=input_shape, dynamic_batch=dynamic_batch
    )
    source = local_source(src)
    recipe = onnx_recipe(options, image_size=image_size, onnx_hook=onnx_hook, progress=progress)
    return convert_into(out_dir, recipe, source)


def _produce(
    files: PaddleModel,
    staging: Path,
    *,
    options: dict[str, Any],
    image_size: tuple[int, int] | None,
    hook: OnnxHook | None,
    say: Progress,
) -> dict[str, Any]:
    """Every step, into ``staging / model.onnx``, in a child process (:mod:`picozoo.native`):
    paddle2onnx, onnxsim, Paddle Inference and ONNX Runtime are native code that can abort
    (paddle2onnx 2.1.0 does on a quantized model); there an abort is one error line naming the
    step's tool. A ``hook`` (a test's function) runs the steps in this process."""
    toolchain.check_onnx_toolchain(options["simplify"])
    if hook is not None:
        return produce_here(
            files, staging, options=options, image_size=image_size, hook=hook, say=say
        )
    from ..native import run_native
    from .p2o import check_convertible

    check_convertible(files)  # a damaged or quantized model: refused before the child starts
    fields: dict[str, Any] = run_native(
        "picozoo.convert.to_onnx:produce_here",
        tool=_tool_at,
        subject=str(files.model_file),
        progress=say,
        files=files,
        staging=staging,
        options=options,
        image_size=image_size,
        hook=None,
    )
    return fields


def _tool_at(step: str | None) -> str:
    """The tool at work at the progress line ``step`` (for the error of a crash).

    >>> _tool_at("paddle2onnx m/model.pdmodel (opset 11, optimizer off)"), _tool_at("onnxsim")
    ('paddle2onnx', 'onnxsim')
    """
    if step is None:
        return "the ONNX conversion"
    for prefix, tool in (
        ("paddle2onnx", "paddle2onnx"),
        ("onnxsim", "onnxsim"),
        ("inputs in", "onnx.checker"),
        ("parity check", "Paddle Inference or ONNX Runtime (parity check)"),
        ("parity ok", "Paddle Inference or ONNX Runtime (detection agreement)"),
    ):
        if step.startswith(prefix):
            return tool
    return "the ONNX conversion"


def produce_here(
    files: PaddleModel,
    staging: Path,
    *,
    options: dict[str, Any],
    image_size: tuple[int, int] | None,
    hook: OnnxHook | None,
    say: Progress,
) -> dict[str, Any]:
    """Every step of :func:`_produce`, in this process."""
    import onnx

    from .onnx_agreement import looks_like_detector, onnx_agreement
    from .p2o import paddle_to_onnx
    from .parity import check_parity, feed_order
    from .shapes import choose_batch, fix_onnx_inputs, onnx_input_dims, order_inputs, plan_inputs
    from .simplify import check_model, simplify_model

    timings: dict[str, float] = {}
    t = time.perf_counter()
    say(f"paddle2onnx {files.model_file} (opset {options['opset']}, optimizer off)")
    model = onnx.load_from_string(paddle_to_onnx(files, opset=options["opset"]))
    timings["paddle2onnx"] = _lap(t)
    # paddle2onnx lists the inputs of legacy programs in another order than Paddle's feed ops;
    # users feed by position as they do in Paddle, so keep Paddle's order (also after onnxsim)
    feed = feed_order("paddle", files.model_file)
    order_inputs(model, feed)

    declared = onnx_input_dims(model)
    dtypes = {i.name: _onnx_dtype(i) for i in model.graph.input if i.name in declared}
    nms = any(n.op_type == "NonMaxSuppression" for n in model.graph.node)
    dynamic, why = choose_batch(
        declared, options["dynamic_batch"], overridden=bool(options["input_shape"]), nms=nms
    )
    shapes = plan_inputs(
        declared, options["input_shape"], files.input_size or image_size, dynamic_batch=dynamic
    )
    fix_onnx_inputs(model, shapes, dynamic_batch=dynamic)

    t = time.perf_counter()
    if options["simplify"]:
        say("onnxsim")
        model = simplify_model(model)
    timings["onnxsim"] = _lap(t)
    order_inputs(model, feed)
    if hook is not None:
        hook(model)
    check_model(model)
    onnx_path = staging / ONNX_FILE
    onnx.save(model, str(onnx_path))
    inputs = {i.name: _dims(i) for i in model.graph.input if i.name in declared}
    batch = "symbolic" if dynamic else "1"
    say(f"inputs in Paddle's feed order: {_fmt_shapes(inputs)}; batch {batch} ({why})")

    t = time.perf_counter()
    run_shapes = {n: ([2, *s[1:]] if dynamic else s) for n, s in shapes.items()}
    say("parity check: Paddle Inference vs ONNX Runtime, seeded input " + _fmt_shapes(run_shapes))
    report = check_parity(files, onnx_path, run_shapes, dtypes, seed=options["parity_seed"])
    timings["parity"] = _lap(t)
    worst = max((o.get("max_abs", 0.0) for o in report.outputs), default=0.0)
    say(f"parity ok: {len(report.outputs)} outputs, max abs err {worst:.3g}")
    outputs = {o.name: _dims(o) for o in model.graph.output}
    agreement: dict[str, Any] = {"skipped": "not a detector's outputs"}
    if looks_like_detector(list(outputs.values())):
        t = time.perf_counter()
        agreement = onnx_agreement(files, onnx_path)
        timings["agreement"] = _lap(t)
        if "agreement" in agreement:
            say(f"detections agree: {agreement['matched']} of {agreement['detections']} "
                f"on {agreement['images']}")  # fmt: skip

    opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset_used != options["opset"]:
        say(f"note: paddle2onnx raised the opset to {opset_used} (an op needs it)")
    return {
        "output": {
            "opset": opset_used,
            "inputs": inputs,
            "input_order": list(inputs),
            "batch": {"dynamic": dynamic, "why": why},
            "outputs": outputs,
        },
        "parity": report.to_dict(),
        "detection_agreement": agreement,
        "seconds": timings,
    }


def _onnx_dtype(value_info: Any) -> str:
    import onnx

    elem = value_info.type.tensor_type.elem_type
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem)) if elem else "float32"


def _dims(value_info: Any) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def _fmt_shapes(shapes: Mapping[str, Sequence[int | str]]) -> str:
    return ", ".join(f"{n}={'x'.join(map(str, s))}" for n, s in shapes.items())


def _lap(t: float) -> float:
    return round(time.perf_counter() - t, 3)


def _quiet(message: str) -> None:
    pass
