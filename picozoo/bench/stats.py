"""Summary statistics of latency samples, and a pyperf-style stability check.

Percentiles use the *linear* definition (numpy's default ``method="linear"``, Hyndman & Fan
type 7): for sorted samples ``x[0..n-1]`` the q-th percentile is at rank ``(n-1)*q/100``,
interpolating linearly between the two neighbours.

>>> summarize([10.0, 11.0, 12.0, 13.0, 14.0])["p90_ms"]
13.6
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Coefficient of variation (std / mean) above which a run is flagged unstable.
MAX_CV = 0.10
#: Relative tail ((p99 - median) / median) above which a run is flagged unstable.
MAX_TAIL = 0.50
#: Fewer measured samples than this are flagged: percentiles are not meaningful.
MIN_SAMPLES = 10

_ADVICE = (
    "close other programs, pin the CPU frequency (e.g. `cpupower frequency-set -g performance`), "
    "or raise --min-time"
)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, like ``numpy.percentile``.

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    if not samples:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(samples)
    rank = (len(xs) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    frac = rank - lo
    return float(xs[lo] + (xs[hi] - xs[lo]) * frac)


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Median (headline), mean, std (population, ddof=0), p90, p99, min, max, n and FPS.

    >>> s = summarize([2.0, 4.0])
    >>> s["median_ms"], s["mean_ms"], s["std_ms"], round(s["fps"], 1)
    (3.0, 3.0, 1.0, 333.3)
    """
    if not samples_ms:
        raise ValueError("no samples")
    n = len(samples_ms)
    mean = math.fsum(samples_ms) / n
    var = math.fsum((x - mean) ** 2 for x in samples_ms) / n
    median = percentile(samples_ms, 50)
    return {
        "n": n,
        "median_ms": median,
        "mean_ms": mean,
        "std_ms": math.sqrt(var),
        "p90_ms": percentile(samples_ms, 90),
        "p99_ms": percentile(samples_ms, 99),
        "min_ms": float(min(samples_ms)),
        "max_ms": float(max(samples_ms)),
        "fps": 1000.0 / median if median > 0 else None,
    }


def stability(stats: dict[str, Any]) -> dict[str, Any]:
    """Check a :func:`summarize` result; returns ``{"stable": bool, "warnings": [...]}``.

    Flags (like pyperf): std/mean > 10 %, (p99 - median)/median > 50 %, fewer than 10 samples.
    Each warning says what to do.

    >>> stability(summarize([10.0] * 50))["stable"]
    True
    """
    warnings: list[str] = []
    mean, median = stats["mean_ms"], stats["median_ms"]
    if stats["n"] < MIN_SAMPLES:
        warnings.append(
            f"only {stats['n']} measured iterations (< {MIN_SAMPLES}): "
            "raise --min-iters or --min-time"
        )
    if mean > 0:
        cv = stats["std_ms"] / mean
        if cv > MAX_CV:
            warnings.append(
                f"unstable: std is {cv:.0%} of the mean (limit {MAX_CV:.0%}); {_ADVICE}"
            )
    if median > 0:
        tail = (stats["p99_ms"] - median) / median
        if tail > MAX_TAIL:
            warnings.append(
                f"unstable: p99 is {tail:.0%} above the median (limit {MAX_TAIL:.0%}); {_ADVICE}"
            )
    return {"stable": not warnings, "warnings": warnings}


def warm(samples_ms: Sequence[float], *, window: int = 5, tolerance: float = 0.05) -> bool:
    """True once warm-up has settled: the median of the last ``window`` samples differs from
    the median of the ``window`` before them by less than ``tolerance`` (relative).

    >>> warm([50, 30, 12, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    True
    >>> warm([50, 40, 30, 20, 15, 12, 11, 10, 9, 8])
    False
    """
    if len(samples_ms) < 2 * window:
        return False
    last = percentile(samples_ms[-window:], 50)
    before = percentile(samples_ms[-2 * window : -window], 50)
    if before <= 0:
        return True
    return abs(last - before) / before < tolerance
