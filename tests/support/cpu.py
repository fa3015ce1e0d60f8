"""What this CPU can do, from the feature flags the kernel reports (``/proc/cpuinfo``), never
from its vendor or model name: tests that need a feature skip by the feature.

>>> isinstance(cpu_flags(), frozenset)
True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

#: the flags with which OpenVINO's CPU plugin runs bf16 (AVX512-BF16, or AMX-BF16)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The ``flags`` of ``/proc/cpuinfo`` (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(
        flag
        for line in text.splitlines()
        if line.split(":", 1)[0].strip() == "flags"
        for flag in line.split(":", 1)[1].split()
    )


def has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (:data:`BF16_FLAGS`)."""
    return any(f in cpu_flags() for f in BF16_FLAGS)


#: the flags with which OpenVINO's CPU plugin computes in f16 (AVX512-FP16, AMX-FP16)
FP16_FLAGS = ("avx512_fp16", "amx_fp16")


def openvino_runs(precision: str) -> str:
    """What OpenVINO's CPU plugin computes in when asked for ``precision`` on this CPU, from
    its feature flags: bf16 needs AVX512-BF16/AMX; f16 needs AVX512-FP16/AMX-FP16, else it
    runs bf16 where the CPU has that, else f32.

    >>> openvino_runs("fp32")
    'fp32'
    """
    fp16 = any(f in cpu_flags() for f in FP16_FLAGS)
    if precision == "bf16":
        return "bf16" if has_bf16() else "fp32"
    if precision == "fp16":
        return "fp16" if fp16 else "bf16" if has_bf16() else "fp32"
    return "fp32"
