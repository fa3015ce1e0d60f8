"""What a benchmark ran on: CPU model, cores (and how many this process may use), OS, runtime
versions, artifact hashes.

>>> env = collect_environment()
>>> 1 <= env.usable_cores <= env.logical_cores
True
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..threads import usable_cores
from .records import Environment

#: Distributions whose versions are recorded (None when not installed).
RUNTIMES = (
    "onnxruntime",
    "paddlepaddle",
    "openvino",
    "mnn",
    "ncnn",
    "numpy",
    "onnx",
    "paddle2onnx",
    "pandas",
)


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model and physical/logical core counts, from ``/proc/cpuinfo`` where available.

    >>> cpu_info("processor: 0\\nmodel name: X\\nphysical id: 0\\ncore id: 0\\n"
    ...          "processor: 1\\nmodel name: X\\nphysical id: 0\\ncore id: 0\\n")
    {'cpu_model': 'X', 'physical_cores': 1, 'logical_cores': 2}
    """
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    model = None
    logical = 0
    cores: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            logical += 1
            phys = core = None
        elif key == "model name" and model is None:
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        if phys is not None and core is not None:
            cores.add((phys, core))
    if model is None:
        model = platform.processor() or platform.machine() or "unknown CPU"
    return {
        "cpu_model": model,
        "physical_cores": len(cores) or None,
        "logical_cores": logical or os.cpu_count() or 1,
    }


def runtime_versions() -> dict[str, str | None]:
    """Installed versions of every runtime that matters to a benchmark (no imports).

    >>> versions = runtime_versions()
    >>> versions["python"].count(".") >= 1, "onnxruntime" in versions
    (True, True)
    """
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (*RUNTIMES, "picozoo"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def collect_environment() -> Environment:
    """The machine description stored in every result document.

    >>> collect_environment().cpu_model != ""
    True
    """
    return Environment(
        **cpu_info(),
        hostname=platform.node(),
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        python_executable=sys.executable,
        versions=runtime_versions(),
        cpu_governor=_governor(),
        usable_cores=usable_cores(),
    )


def device_label(env: Environment) -> str:
    """A short device name for tables.

    >>> device_label(collect_environment())  # doctest: +SKIP
    'Intel(R) Xeon(R) Processor (2 cores)'
    """
    return f"{env.cpu_model} ({env.logical_cores} cores)"


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (sorted relative names + contents).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     sha256_of(Path(f.name))[:12]
    'e3b0c44298fc'
    """
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode() + b"\0")
            h.update(bytes.fromhex(sha256_of(f)))
        return h.hexdigest()
    return sha256_file(path)


def _governor() -> str | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return p.read_text().strip()
    except OSError:
        return None
