"""picozoo: model-zoo manager and benchmark suite for PP-PicoDet.

The library, one call per command (the CLI is a thin layer over these):

- :func:`picozoo.bench.run`: latency of models on engines/precisions/threads -> a
  ``picozoo.bench/1`` document;
- :func:`picozoo.convert.convert`: a model to ONNX / Paddle-Lite / OpenVINO / MNN / ncnn,
  proved by a parity check;
- :func:`picozoo.detect.infer` and :func:`picozoo.detect.evaluate`: detections on images, COCO
  mAP on a data set;
- :mod:`picozoo.hub`: the registry (:func:`~picozoo.hub.load_registry`) and the cache
  (:class:`~picozoo.hub.Store`); :mod:`picozoo.runtime`: one interface over every engine.

Settings (cache, mirrors, offline, ...) come from :class:`~picozoo.settings.Settings`, read
from the environment once; every error is a :class:`~picozoo.errors.PicozooError`.

Heavy dependencies (paddle, onnx, onnxruntime, pandas) are imported only inside the functions
that need them, so importing picozoo and running ``picozoo --help`` stays fast.

>>> from picozoo.hub.registry import load_registry
>>> load_registry().get("picodet-s-416").claims.map
32.5
"""

from __future__ import annotations

from .thirdparty import contain_inherited as _contain_inherited

__version__ = "0.1.0"

__all__ = ["PicozooError", "Settings", "__version__"]

# a child of a picozoo command (bench worker, converter) keeps third-party caches out of $HOME
# like its parent (see picozoo.thirdparty; nothing happens in other processes)
_contain_inherited()


def __getattr__(name: str) -> object:
    """``PicozooError`` and ``Settings``, imported on first use."""
    if name == "PicozooError":
        from .errors import PicozooError

        return PicozooError
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
