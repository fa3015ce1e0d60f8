"""Paddle Inference adapter (CPU).

Speed settings (bench, as upstream measures): oneDNN (MKLDNN) on, CPU math library threads =
N, IR optimizations on. Reference settings (parity): oneDNN off, the plain kernels. A run
copies the inputs in, runs, and copies every output out (all three are timed by the bench).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capture import captured_output
from ..errors import EngineError, require
from ..paddle_dir import find_paddle_model
from .base import Runtime, TensorInfo, short_error

_DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "int8", "bool")


@dataclass
class PaddleRuntime(Runtime):
    predictor: Any = None
    _handles: tuple[list[tuple[str, Any]], list[Any]] | None = None

    @property
    def version(self) -> str:
        return str(require("paddle", "convert", package="paddlepaddle").__version__)

    def inputs(self) -> list[TensorInfo]:
        out = []
        for n in self.predictor.get_input_names():
            dtype = _dtype(self.predictor.get_input_handle(n).type())
            lname = n.lower()
            # Paddle reports no shape before the first reshape: PicoDet's inputs are an NCHW
            # image and [N, 2] scale_factor / im_shape
            shape: list[Any] = (
                [None, 2]
                if "scale_factor" in lname or lname == "im_shape"
                else [None, 3, None, None]
            )
            out.append(TensorInfo(n, shape, dtype))
        return out

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(n, [], "float32") for n in self.predictor.get_output_names()]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        if self._handles is None:  # looked up once: the bench times every run()
            p = self.predictor
            self._handles = (
                [(n, p.get_input_handle(n)) for n in p.get_input_names()],
                [p.get_output_handle(n) for n in p.get_output_names()],
            )
        inputs, outputs = self._handles
        for n, h in inputs:
            if n not in feeds:
                raise EngineError(f"Paddle model input {n!r} was not given")
            h.reshape(list(feeds[n].shape))
            h.copy_from_cpu(feeds[n])
        self.predictor.run()
        return [h.copy_to_cpu() for h in outputs]


def probe_program(model_file: Path) -> list[str]:
    """The op types of ``model_file``, read without Paddle; raise :class:`EngineError` (exit 13)
    for a file that is not a Paddle program, which would crash Paddle Inference (SIGSEGV on
    random bytes as ``model.pdmodel``)."""
    from ..paddle_program import ProgramError, program_ops

    try:
        return program_ops(model_file)
    except (ProgramError, OSError) as e:
        raise EngineError(
            f"Paddle Inference cannot load {model_file}: {e}",
            hint="the file is damaged or not a Paddle inference model: pull or export it again",
        ) from e


def _dtype(t: Any) -> str:
    name = str(t).rsplit(".", 1)[-1].lower()
    return name if name in _DTYPES else "float32"


def open_model(
    path: Path, *, threads: int, precision: str, reference: bool, pipelined: bool = False
) -> PaddleRuntime:
    files = find_paddle_model(path)
    probe_program(files.model_file)
    require("paddle", "convert", package="paddlepaddle")
    from paddle import inference

    params = str(files.params_file) if files.params_file else ""
    with captured_output():  # paddle prints its own logs on stdout
        cfg = inference.Config(str(files.model_file), params)
        cfg.disable_gpu()
        if reference:
            cfg.disable_mkldnn()
        else:
            cfg.enable_mkldnn()
            cfg.set_mkldnn_cache_capacity(10)
            cfg.switch_ir_optim(True)
        cfg.set_cpu_math_library_num_threads(threads)
        cfg.disable_glog_info()
        try:
            predictor = inference.create_predictor(cfg)
        except Exception as e:  # paddle raises ValueError/RuntimeError/its own types
            error: Exception | None = e
        else:
            error = None
    if error is not None:
        raise EngineError(
            f"Paddle Inference cannot load {files.model_file.name}: {short_error(error)}",
            hint="check the model loads with paddle.inference",
        ) from error
    settings = {
        "mkldnn_enabled": bool(cfg.mkldnn_enabled()),
        "cpu_math_library_num_threads": int(cfg.cpu_math_library_num_threads()),
        "ir_optim": bool(cfg.ir_optim()),
        "model_file": files.model_file.name,
        "timed": "copy_from_cpu + run + copy_to_cpu",
    }
    return PaddleRuntime(
        path=files.model_file,
        threads=threads,
        precision=precision,
        settings=settings,
        engine="paddle",
        extra="convert",
        predictor=predictor,
    )
