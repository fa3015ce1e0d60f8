"""Convert Paddle inference models: to ONNX (proved by a parity check) and to Paddle-Lite.

This package is light: paddle, paddle2onnx, onnx, onnxsim and onnxruntime are imported only
inside the functions that run a conversion.

>>> from picozoo.registry import load_registry
>>> r = ensure_onnx(load_registry().get("picodet-s-416"), postprocess=False,
...                 cache_dir=Path("~/.cache/picozoo").expanduser())  # doctest: +SKIP
>>> r.onnx_path.name, r.provenance["parity"]["passed"]  # doctest: +SKIP
('model.onnx', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConversionError, NewerPaddleModelError, ParityError, ToolchainError
from .result import ConversionResult
from .store import list_converted

if TYPE_CHECKING:
    from ..registry import Model
    from .pipeline import OnnxHook, Progress


def ensure_onnx(
    model: Model,
    *,
    postprocess: bool,
    cache_dir: Path,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool = False,
    mirrors: list[str] | None = None,
    offline: bool | None = None,
    progress: Progress | None = None,
    onnx_hook: OnnxHook | None = None,
) -> ConversionResult:
    """The converted ONNX of ``model`` (from the cache, or converted now).

    Source: the ``inference`` tarball (``postprocess=True``) or ``inference-nopp``, pulled first
    if it is not cached.
    """
    from .models import ensure_onnx as _impl

    return _impl(
        model,
        postprocess=postprocess,
        cache_dir=cache_dir,
        opset=opset,
        simplify=simplify,
        input_shape=input_shape,
        dynamic_batch=dynamic_batch,
        mirrors=mirrors,
        offline=offline,
        progress=progress,
        onnx_hook=onnx_hook,
    )


def convert_paddle_dir_to_onnx(src_dir: Path, out_dir: Path, **options: Any) -> ConversionResult:
    """Convert a plain Paddle inference directory into ``out_dir/model.onnx`` (+ provenance).

    Options as :func:`picozoo.convert.pipeline.convert_paddle_dir_to_onnx`.
    """
    from .pipeline import convert_paddle_dir_to_onnx as _impl

    return _impl(Path(src_dir), Path(out_dir), **options)


__all__ = [
    "ConversionError",
    "ConversionResult",
    "NewerPaddleModelError",
    "ParityError",
    "ToolchainError",
    "convert_paddle_dir_to_onnx",
    "ensure_onnx",
    "list_converted",
]
