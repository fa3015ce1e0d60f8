"""The runtime layer: one small interface over every inference engine picozoo runs.

``load(engine, path, threads=N)`` returns a :class:`~picozoo.runtime.base.Runtime` that lists
its inputs and outputs, runs a feed (``{name: ndarray}`` -> outputs in order) and reports the
engine's version and settings. Adapters live one per module and import their engine only when
loaded, so this package is light. The parity check, the bench worker and every later user
(inference on images, new engines) go through it.

>>> sorted(ENGINES)
['lite', 'mnn', 'ncnn', 'onnxruntime', 'openvino', 'paddle']
"""

from __future__ import annotations

from .base import ENGINES, Runtime, TensorInfo, load

__all__ = ["ENGINES", "Runtime", "TensorInfo", "load"]
