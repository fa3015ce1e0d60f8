"""picozoo: model-zoo manager and benchmark suite for PP-PicoDet.

Heavy dependencies (paddle, onnx, onnxruntime, pandas) are imported only inside the functions
that need them, so importing picozoo and running ``picozoo --help`` stays fast.

>>> from picozoo.hub.registry import load_registry
>>> load_registry().get("picodet-s-416").claims.map
32.5
"""

__version__ = "0.1.0"
