"""Versions of the conversion tools, and the checks that they are usable.

Nothing here imports paddle or onnx: versions come from the installed distributions' metadata,
so computing a cache key (and answering a cache hit) stays instant.

>>> check_paddle_version("3.2.2")
>>> check_paddle_version("3.3.0")
Traceback (most recent call last):
...
picozoo.convert.errors.ToolchainError: paddlepaddle 3.3.0 is installed but picozoo convert needs \
paddlepaddle>=3.0,<3.3 (paddle2onnx 2.1.0 cannot read programs of paddlepaddle 3.3+) \
(run: pip install 'paddlepaddle>=3.0,<3.3')
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from types import ModuleType

from .errors import ToolchainError

#: paddlepaddle versions paddle2onnx 2.1.0 works with: [MIN, MAX)
PADDLE_MIN = (3, 0)
PADDLE_MAX = (3, 3)
PADDLE_SPEC = "paddlepaddle>=3.0,<3.3"
#: Distributions whose versions go into provenance and the cache key.
TOOLS = ("paddlepaddle", "paddle2onnx", "onnx", "onnxsim", "onnxruntime")
#: Bump when the conversion pipeline changes in a way that changes its outputs.
PIPELINE_VERSION = 1
_INSTALL_HINT = "run: pip install 'picozoo[convert]'"


def dist_version(name: str) -> str | None:
    """Installed version of distribution ``name`` (``paddlepaddle-gpu`` counts as paddlepaddle)."""
    candidates = [name, f"{name}-gpu"] if name == "paddlepaddle" else [name]
    for n in candidates:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def tool_versions() -> dict[str, str | None]:
    """``{distribution: version or None}`` for every tool of the ONNX pipeline."""
    return {t: dist_version(t) for t in TOOLS}


def _release(version: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_paddle_version(version: str | None) -> None:
    """Raise :class:`ToolchainError` unless ``version`` is in the supported range."""
    if version is None:
        raise ToolchainError(
            "paddlepaddle is not installed; picozoo convert needs it to read Paddle models",
            hint=f"{_INSTALL_HINT}, or pip install '{PADDLE_SPEC}'",
        )
    if not PADDLE_MIN <= _release(version) < PADDLE_MAX:
        raise ToolchainError(
            f"paddlepaddle {version} is installed but picozoo convert needs {PADDLE_SPEC} "
            "(paddle2onnx 2.1.0 cannot read programs of paddlepaddle 3.3+)",
            hint=f"run: pip install '{PADDLE_SPEC}'",
        )


def require(module: str, dist: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`ToolchainError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ToolchainError(
            f"{dist or module} is needed for this conversion but cannot be imported ({e})",
            hint=_INSTALL_HINT,
        ) from None


def check_onnx_toolchain(simplify: bool) -> None:
    """Check every tool of the ONNX pipeline is present (paddle in range) before any work."""
    check_paddle_version(dist_version("paddlepaddle"))
    needed = ["paddle2onnx", "onnx", "onnxruntime"] + (["onnxsim"] if simplify else [])
    missing = [t for t in needed if dist_version(t) is None]
    if missing:
        raise ToolchainError(f"missing conversion tools: {', '.join(missing)}", hint=_INSTALL_HINT)
