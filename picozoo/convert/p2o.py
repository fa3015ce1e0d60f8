"""Step 1 of ``convert --to onnx``: paddle2onnx through its Python API, optimizer off.

paddle2onnx prints to stdout and reports failures by logging and calling ``sys.exit``; this
module captures all of that and turns the known failure modes into one-line diagnoses. It can
also abort the process (2.1.0 on a quantized model: "Only support e4m3 or e5m2 now"): the ONNX
recipe runs in a child process (:mod:`picozoo.native`), so an abort is one error line (exit 9),
and the program is read first (:mod:`picozoo.paddle_program`): a file that is not a Paddle
program, or a model quantized by PaddleSlim, is refused before paddle2onnx sees it.
"""

from __future__ import annotations

from ..capture import captured_output
from ..errors import ConversionError, NewerPaddleModelError, QuantizedModelError
from ..paddle_dir import PaddleModel
from ..paddle_program import ProgramError, program_ops, quantized_ops

#: The message paddle2onnx 2.1.0 gives on models saved by paddlepaddle >= 3.3.
NEWER_PADDLE_MARKER = "MUST be ir::FloatAttribute"


def paddle_to_onnx(model: PaddleModel, *, opset: int) -> bytes:
    """Convert ``model`` to a serialized ONNX model (paddle2onnx's own optimizer disabled), in
    this process: :mod:`picozoo.convert.to_onnx` runs the whole recipe in a child process.

    ``optimize_tool="None"``: paddle2onnx's default (polygraphy) pip-installs packages at run
    time; picozoo runs onnxsim itself instead.

    >>> paddle_to_onnx(find_paddle_model(Path("m")), opset=11)[:2]  # doctest: +SKIP
    b'\\x08\\x07'
    """
    check_convertible(model)
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
        why = f"{type(failure).__name__}: {failure}" if failure else None
        raise diagnose(model, out.tail(20), why) from failure
    return onnx_bytes


def check_convertible(model: PaddleModel, arg: str | None = None) -> list[str]:
    """The op types of ``model``'s program; raise :class:`ConversionError` (exit 9) for a file
    that is not a Paddle program, :class:`QuantizedModelError` for a quantized model (``arg``:
    how the user named the model, for the hint; default its folder)."""
    try:
        ops = program_ops(model.model_file)
    except (ProgramError, OSError) as e:
        raise ConversionError(
            f"cannot convert {model.model_file}: {e}",
            hint="the file is damaged or not a Paddle inference model: pull or export it again",
        ) from e
    _refuse(model, ops, arg)
    return ops


def refuse_quantized(model: PaddleModel, arg: str | None = None) -> None:
    """Raise :class:`QuantizedModelError` when ``model`` is quantized (an unreadable program
    is left to :func:`check_convertible`, after the tools were checked)."""
    try:
        ops = program_ops(model.model_file)
    except (ProgramError, OSError):
        return
    _refuse(model, ops, arg)


def _refuse(model: PaddleModel, ops: list[str], arg: str | None) -> None:
    quant = quantized_ops(ops)
    if quant:
        name = arg or str(model.directory)
        raise QuantizedModelError(
            f"{model.model_file} is quantized ({', '.join(quant)} ops): paddle2onnx 2.1.0 "
            "cannot convert a PaddleSlim-quantized model (it aborts)",
            hint="Paddle Inference runs and benches it as it is: "
            f"`picozoo bench {name} --engine paddle`, `picozoo infer {name} "
            "IMAGE --engine paddle`; convert the model's float version instead",
        )


def diagnose(model: PaddleModel, log: str, failure: str | None) -> ConversionError:
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
    reason = _reason(log) or failure or "no output"
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
