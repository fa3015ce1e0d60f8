"""Step 1 of ``convert --to onnx``: paddle2onnx through its Python API, optimizer off.

paddle2onnx prints to stdout and reports failures by logging and calling ``sys.exit``; this
module captures all of that and turns the known failure modes into one-line diagnoses.
"""

from __future__ import annotations

from ..capture import captured_output
from ..errors import ConversionError, NewerPaddleModelError
from ..paddle_dir import PaddleModel

#: The message paddle2onnx 2.1.0 gives on models saved by paddlepaddle >= 3.3.
NEWER_PADDLE_MARKER = "MUST be ir::FloatAttribute"


def paddle_to_onnx(model: PaddleModel, *, opset: int) -> bytes:
    """Convert ``model`` to a serialized ONNX model (paddle2onnx's own optimizer disabled).

    ``optimize_tool="None"``: paddle2onnx's default (polygraphy) pip-installs packages at run
    time; picozoo runs onnxsim itself instead.

    >>> paddle_to_onnx(find_paddle_model(Path("m")), opset=11)[:2]  # doctest: +SKIP
    b'\\x08\\x07'
    """
    params = str(model.params_file) if model.params_file else ""
    onnx_bytes: bytes | None = None
    failure: BaseException | None = None
    with captured_output() as out:
        try:
            import paddle2onnx  # noisy import (paddle warnings): captured too

            onnx_bytes = paddle2onnx.export(
                str(model.model_file),
                params,
                None,
                opset_version=opset,
                enable_onnx_checker=True,
                optimize_tool="None",
            )
        except (Exception, SystemExit) as e:  # paddle2onnx calls sys.exit on errors
            failure = e
    if onnx_bytes is None or failure is not None:
        raise diagnose(model, out.tail(20), failure) from failure
    return onnx_bytes


def diagnose(model: PaddleModel, log: str, failure: BaseException | None) -> ConversionError:
    """A one-line error for a failed paddle2onnx run (``log``: what paddle2onnx printed).

    >>> from pathlib import Path
    >>> m = PaddleModel(Path("m/model.json"), None, None)
    >>> type(diagnose(m, "... the 0th elementwise MUST be ir::FloatAttribute", None)).__name__
    'NewerPaddleModelError'
    """
    if NEWER_PADDLE_MARKER in log:
        return NewerPaddleModelError(
            f"{model.model_file}: saved by paddlepaddle >= 3.3, which paddle2onnx 2.1.0 cannot "
            "parse (float attributes: 'the 0th elementwise MUST be ir::FloatAttribute')",
            hint="re-export the model with paddlepaddle<3.3, or convert the upstream "
            "inference tarball (model.pdmodel) instead",
        )
    reason = _reason(log) or (f"{type(failure).__name__}: {failure}" if failure else "no output")
    return ConversionError(
        f"paddle2onnx could not convert {model.model_file}: {reason}",
        hint="check the model loads with paddle.inference; PICOZOO_DEBUG=1 shows the traceback",
    )


def _reason(log: str) -> str:
    for line in reversed(log.splitlines()):
        if "Failed to convert PaddlePaddle model:" in line:
            return line.split("Failed to convert PaddlePaddle model:", 1)[1].strip().rstrip(".")
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
