"""Versions of the conversion tools, and the checks that they are usable.

Nothing here imports paddle or onnx: versions come from the installed distributions' metadata,
so computing a cache key (and answering a cache hit) stays instant.

>>> check_paddle_version("3.2.2")
>>> missing_tools(["onnxsim"]).message
"onnxsim is not installed; this needs the [convert] extra: pip install 'picozoo[convert]'"
>>> check_paddle_version("3.3.0")
Traceback (most recent call last):
...
picozoo.errors.ToolchainError: paddlepaddle 3.3.0 is installed but picozoo convert needs \
paddlepaddle>=3.0,<3.3 (paddle2onnx 2.1.0 cannot read programs of paddlepaddle 3.3+) \
(run: pip install 'paddlepaddle>=3.0,<3.3')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import metadata

from ..errors import MissingDependencyError, ToolchainError

#: paddlepaddle versions paddle2onnx 2.1.0 works with: [MIN, MAX)
PADDLE_MIN = (3, 0)
PADDLE_MAX = (3, 3)
PADDLE_SPEC = "paddlepaddle>=3.0,<3.3"
#: Distributions whose versions go into provenance and the cache key.
TOOLS = ("paddlepaddle", "paddle2onnx", "onnx", "onnxsim", "onnxruntime")
#: Bump when the conversion pipeline changes in a way that changes its outputs.
PIPELINE_VERSION = 2  # 2: inputs in Paddle's feed order, batch follows the Paddle model
EXTRA = "convert"


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
    """Raise :class:`MissingDependencyError` (:class:`ToolchainError` when the version is out
    of range) unless ``version`` is in the supported range."""
    if version is None:
        raise MissingDependencyError(
            "paddlepaddle", EXTRA, hint=f"paddle2onnx 2.1.0 needs {PADDLE_SPEC}"
        )
    if not PADDLE_MIN <= _release(version) < PADDLE_MAX:
        raise ToolchainError(
            f"paddlepaddle {version} is installed but picozoo convert needs {PADDLE_SPEC} "
            "(paddle2onnx 2.1.0 cannot read programs of paddlepaddle 3.3+)",
            hint=f"run: pip install '{PADDLE_SPEC}'",
        )


def missing_tools(names: Sequence[str]) -> MissingDependencyError:
    """The error for conversion tools that are not installed (all from the [convert] extra)."""
    if len(names) == 1:
        return MissingDependencyError(names[0], EXTRA)
    return ToolchainError(
        f"{', '.join(names)} are not installed; this needs the [{EXTRA}] extra: "
        f"pip install 'picozoo[{EXTRA}]'"
    )


def check_onnx_toolchain(simplify: bool) -> None:
    """Check every tool of the ONNX pipeline is present (paddle in range) before any work."""
    check_paddle_version(dist_version("paddlepaddle"))
    needed = ["paddle2onnx", "onnx", "onnxruntime"] + (["onnxsim"] if simplify else [])
    missing = [t for t in needed if dist_version(t) is None]
    if missing:
        raise missing_tools(missing)
