"""Skip, not fail, where an engine the test needs is not installed (the [openvino], [mnn] and
[ncnn] extras, and pnnx, installed with ``pip install --no-deps pnnx``).

>>> need_engine("onnxruntime")  # doctest: +SKIP
"""

from __future__ import annotations

import pytest

#: the Python module each engine imports
MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "mnn": "MNN", "ncnn": "ncnn"}


def need_engine(engine: str) -> None:
    """Skip the calling test unless ``engine`` (and ONNX Runtime, the parity reference; pnnx
    for NCNN) can run here."""
    pytest.importorskip(MODULES[engine])
    pytest.importorskip("onnxruntime")
    if engine == "ncnn":
        from picozoo.convert.to_ncnn import find_pnnx
        from picozoo.errors import ToolchainError

        try:
            find_pnnx()
        except ToolchainError:
            pytest.skip("pnnx is not installed: pip install --no-deps pnnx")
