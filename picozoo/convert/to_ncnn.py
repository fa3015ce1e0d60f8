"""ONNX -> NCNN (``model.ncnn.param`` + ``model.ncnn.bin`` + ``model.ncnn.io.json``) with pnnx.

The converter is the standalone ``pnnx`` executable, taken from ``--pnnx-bin`` (a path, or a
name on PATH), else the one bundled in the ``pnnx`` PyPI package (located without importing
the package, which imports torch), else ``pnnx`` on PATH when it is an executable rather than
that package's Python launcher. Install it with ``pip install --no-deps pnnx``: its declared
torch dependency (gigabytes of CUDA libraries) is not needed by the executable.

pnnx writes several files next to its input (``.pnnx.param``, ``_pnnx.py``, ``_ncnn.py``,
``.pnnx.onnx`` ...): it runs on a copy of the ONNX in a scratch folder, and only the
``.ncnn.param``/``.ncnn.bin`` pair is kept. NCNN names the blobs ``in0..``/``out0..`` in the
ONNX order; the ``.io.json`` maps them back to the ONNX names (checked by the parity run).

>>> pnnx_args(Path("/bin/pnnx"), {"image": [1, 3, 320, 320]}, "fp32")
['/bin/pnnx', 'model.onnx', 'inputshape=[1,3,320,320]', 'fp16=0', 'ncnnparam=model.ncnn.param',
 'ncnnbin=model.ncnn.bin']
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import ConversionError, ToolchainError
from ..native import exit_status
from .to_engine import EngineWriter, check_installed
from .toolchain import dist_version

PARAM, BIN = "model.ncnn.param", "model.ncnn.bin"
INSTALL_HINT = (
    "pip install --no-deps pnnx (the pnnx executable is standalone: skip its torch "
    "dependency), or pass --pnnx-bin PATH"
)


@dataclass(frozen=True)
class PnnxTool:
    """The pnnx executable, and where it came from (``option``, ``package`` or ``path``)."""

    path: Path
    origin: str
    version: str = ""

    def identity(self) -> str:
        """What goes into the cache key: the package version, or the binary's sha256."""
        if self.origin == "package" and self.version:
            return f"pnnx=={self.version}"
        return f"{self.path.name}@sha256:{sha256_file(self.path)[:16]}"


def find_pnnx(pnnx_bin: str | None = None) -> PnnxTool:
    """Locate pnnx (see the module docstring) or raise :class:`ToolchainError` (exit 11).

    >>> find_pnnx("/nonexistent/pnnx")
    Traceback (most recent call last):
    ...
    picozoo.errors.ToolchainError: pnnx not found or not executable: /nonexistent/pnnx \
(give the path of the pnnx executable with --pnnx-bin)
    """
    if pnnx_bin:
        path = Path(pnnx_bin).expanduser()
        found = str(path) if path.is_file() else shutil.which(str(path))
        if found is None or not os.access(found, os.X_OK):
            raise ToolchainError(
                f"pnnx not found or not executable: {pnnx_bin}",
                hint="give the path of the pnnx executable with --pnnx-bin",
            )
        return PnnxTool(Path(found), "option")
    bundled = _bundled()
    if bundled is not None:
        return PnnxTool(bundled, "package", dist_version("pnnx") or "")
    on_path = shutil.which("pnnx")
    if on_path and not _is_script(Path(on_path)):
        return PnnxTool(Path(on_path), "path")
    raise ToolchainError("the pnnx converter is not installed", hint=INSTALL_HINT)


def _bundled() -> Path | None:
    """The executable inside the ``pnnx`` package, found without importing it."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        exe = Path(folder) / "pnnx"
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    return None


def _is_script(path: Path) -> bool:
    """True for a ``#!`` launcher (the package's console script needs torch to start)."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return True


def pnnx_args(binary: Path, shapes: dict[str, list[int]], precision: str) -> list[str]:
    """The pnnx command line, run in the scratch folder that holds ``model.onnx``."""
    inputshape = ",".join("[" + ",".join(map(str, s)) + "]" for s in shapes.values())
    return [
        str(binary),
        "model.onnx",
        f"inputshape={inputshape}",
        f"fp16={1 if precision == 'fp16' else 0}",
        f"ncnnparam={PARAM}",
        f"ncnnbin={BIN}",
    ]


def ncnn_writer(pnnx_bin: str | None = None) -> EngineWriter:
    """The NCNN writer; raises :class:`~picozoo.errors.MissingDependencyError` (exit 11) when
    pnnx, ``ncnn`` (the runtime of the parity check) or ``onnxruntime`` is missing."""
    tool = find_pnnx(pnnx_bin)
    check_installed("ncnn", "ncnn")
    check_installed("onnxruntime", "ncnn")
    tools = {
        "pnnx": tool.identity(),
        "ncnn": dist_version("ncnn"),
        "onnxruntime": dist_version("onnxruntime"),
    }

    return EngineWriter(
        "ncnn", PARAM, (BIN,), tools, write=functools.partial(_write, tool), naming=_naming
    )


def _naming(side: str, index: int, _name: str) -> str:
    """NCNN's blob names: ``in0..`` / ``out0..`` in the ONNX order."""
    return f"{'in' if side == 'inputs' else 'out'}{index}"


def _write(
    tool: PnnxTool, onnx_path: Path, staging: Path, shapes: dict[str, list[int]], precision: str
) -> dict[str, Any]:
    scratch = staging / ".pnnx"
    scratch.mkdir()
    try:
        shutil.copyfile(onnx_path, scratch / "model.onnx")
        cmd = pnnx_args(tool.path, shapes, precision)
        try:
            proc = subprocess.run(
                cmd, cwd=scratch, capture_output=True, text=True, errors="replace", timeout=1800
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ToolchainError(f"cannot run {tool.path}: {e}", hint=INSTALL_HINT) from e
        for name in (PARAM, BIN):
            out = scratch / name
            if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise ConversionError(
                    f"pnnx failed on {onnx_path.name} ({exit_status(proc.returncode)}): "
                    f"{tail[0][:300]}",
                    hint="run it by hand to see its full output: "
                    f"cd <copy of the model> && {' '.join(cmd)} (nothing was cached)",
                )
            out.replace(staging / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "converter": {
            "tool": "pnnx",
            "path": str(tool.path),
            "origin": tool.origin,
            "args": cmd[1:],
            "kept": [PARAM, BIN],
        },
        "output": {"weights": "fp16" if precision == "fp16" else "fp32"},
    }
