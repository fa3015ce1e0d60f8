"""Skip a test module whose optional packages are not installed, without importing them at
collection (``pytest.importorskip`` at module level imported Paddle, onnxsim... for every run,
even a run of one unrelated test).

>>> needs("json").mark.args, needs("json", "no_such_module_xyz").kwargs["reason"]
((False,), 'not installed: no_such_module_xyz')
"""

from __future__ import annotations

import importlib.util

import pytest


def needs(*modules: str) -> pytest.MarkDecorator:
    """A ``skipif`` mark: skip unless every top-level module in ``modules`` is installed (found,
    not imported)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")
