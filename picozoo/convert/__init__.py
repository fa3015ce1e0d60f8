"""Convert Paddle inference models: to ONNX (proved by a parity check) and to Paddle-Lite; and
from the ONNX to OpenVINO, MNN and NCNN (each proved against ONNX Runtime).

:func:`convert` is the one entry point and the public API (CLI, bench and library callers): a
model id, a folder or an ONNX file (as a string or a :class:`~picozoo.targets.Target`) in, a
cached :class:`ConversionResult` out. Modules: ``sources`` (what is
converted), ``cached`` (key, cache hit, staging, provenance, install, pin -- for every format),
``to_onnx`` / ``to_lite`` (the recipes), ``p2o``, ``shapes``, ``simplify``, ``parity``
(the ONNX steps), ``toolchain`` (tool versions and checks); ``onnx_input`` (the ONNX an engine
format is made from), ``to_engine`` (their one recipe), ``to_openvino`` / ``to_mnn`` /
``to_ncnn`` (the writers), ``engine_parity``.

This package is light: paddle, paddle2onnx, onnx, onnxsim, onnxruntime and the engines are
imported only inside the functions that run a conversion.

>>> from picozoo.hub.registry import load_registry
>>> from picozoo.hub.store import Store
>>> from picozoo.settings import Settings
>>> from picozoo.targets import resolve_arg
>>> r = convert(Store(Settings.from_env()), resolve_arg("picodet-s-416", load_registry()),
...             postprocess=False)  # doctest: +SKIP
>>> r.path.name, r.provenance.parity_passed  # doctest: +SKIP
('model.onnx', True)
"""

from __future__ import annotations

from .result import ConversionResult
from .run import convert
from .to_onnx import convert_paddle_dir_to_onnx

__all__ = ["ConversionResult", "convert", "convert_paddle_dir_to_onnx"]
