"""Step 2 of ``convert --to onnx``: onnxsim (constant folding, dead-node removal), then checks.

>>> import onnx  # doctest: +SKIP
>>> simplified = simplify_model(onnx.load("layout_cdla.onnx"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..capture import captured_output
from ..errors import ConversionError, require


def simplify_model(model: Any) -> Any:
    """Run ``onnxsim.simplify`` on an ``onnx.ModelProto``; raise if onnxsim's own check fails."""
    onnxsim = require("onnxsim", "convert")
    error: Exception | None = None
    with captured_output():  # onnxsim prints warnings about ops it cannot fold
        try:
            simplified, ok = onnxsim.simplify(model)
        except Exception as e:
            error = e
    if error is not None:
        raise ConversionError(
            f"onnxsim failed: {error}".splitlines()[0][:300],
            hint="retry with --no-simplify to keep paddle2onnx's unsimplified output",
        ) from error
    if not ok:
        raise ConversionError(
            "onnxsim's check failed: the simplified model computes something else",
            hint="retry with --no-simplify",
        )
    return simplified


def check_model(model: Any) -> None:
    """``onnx.checker.check_model`` with full shape/type checking, as a one-line error."""
    onnx = require("onnx", "convert")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise ConversionError(
            f"onnx.checker rejected the converted model: {e}".splitlines()[0][:300],
            hint="the model was not cached; PICOZOO_DEBUG=1 shows the traceback",
        ) from e
