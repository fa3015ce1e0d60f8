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

from .errors import ConversionError, NewerPaddleModelError, ParityError, ToolchainError
from .models import ensure_onnx
from .pipeline import convert_paddle_dir_to_onnx
from .result import ConversionResult
from .store import list_converted

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
