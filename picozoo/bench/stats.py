"""Summary statistics of latency samples, and a pyperf-style stability check.

Percentiles are ``numpy.percentile``'s default *linear* method (Hyndman & Fan type 7): for
sorted samples ``x[0..n-1]`` the q-th percentile is at rank ``(n-1)*q/100``, interpolated
linearly between its two neighbours.

>>> summarize([10.0, 11.0, 12.0, 13.0, 14.0]).p90_ms
13.6
"""

from __future__ import annotations

from collections.abc import Sequence

from .records import Stability, Stats

#: Coefficient of variation (std / mean) above which a run is flagged unstable.
MAX_CV = 0.10
#: Relative tail ((p99 - median) / median) above which a run is flagged unstable.
MAX_TAIL = 0.50
#: Fewer measured samples than this are flagged: percentiles are not meaningful.
MIN_SAMPLES = 10
#: How the percentiles are computed (recorded in every result document).
PERCENTILES = "linear interpolation (numpy default)"

#: What to do about unstable cells: said once per report (the warnings say only what is wrong).
ADVICE = (
    "close other programs, pin the CPU frequency (e.g. `cpupower frequency-set -g performance`), "
    "or raise --min-time / --min-iters"
)


def summarize(samples_ms: Sequence[float]) -> Stats:
    """Median (headline), mean, std (population, ddof=0), p90, p99, min, max, n and FPS.

    >>> s = summarize([2.0, 4.0])
    >>> s.median_ms, s.mean_ms, s.std_ms, round(s.fps, 1)
    (3.0, 3.0, 1.0, 333.3)
    """
    import numpy as np

    if len(samples_ms) == 0:
        raise ValueError("no samples")
    x = np.asarray(samples_ms, dtype=np.float64)
    median, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))  # method="linear"
    return Stats(
        n=len(x),
        median_ms=median,
        mean_ms=float(x.mean()),
        std_ms=float(x.std()),
        p90_ms=p90,
        p99_ms=p99,
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        fps=1000.0 / median if median > 0 else None,
    )


def stability(stats: Stats) -> Stability:
    """Check a :func:`summarize` result; each warning says what is wrong (:data:`ADVICE` says
    what to do, once per report).

    Flags (like pyperf): std/mean > 10 %, (p99 - median)/median > 50 %, fewer than 10 samples.

    >>> stability(summarize([10.0] * 50))
    Stability(stable=True, warnings=())
    >>> stability(summarize([10.0] * 5)).warnings
    ('only 5 measured iterations (< 10)',)
    """
    warnings: list[str] = []
    if stats.n < MIN_SAMPLES:
        warnings.append(f"only {stats.n} measured iterations (< {MIN_SAMPLES})")
    if stats.mean_ms > 0:
        cv = stats.std_ms / stats.mean_ms
        if cv > MAX_CV:
            warnings.append(f"std is {cv:.0%} of the mean (limit {MAX_CV:.0%})")
    if stats.median_ms > 0:
        tail = (stats.p99_ms - stats.median_ms) / stats.median_ms
        if tail > MAX_TAIL:
            warnings.append(f"p99 is {tail:.0%} above the median (limit {MAX_TAIL:.0%})")
    return Stability(stable=not warnings, warnings=tuple(warnings))


def short_warning(warning: str) -> str:
    """A stability warning without advice (results written before :data:`ADVICE` was said once
    per report repeat it in every warning).

    >>> short_warning("unstable: std is 25% of the mean (limit 10%); close other programs")
    'std is 25% of the mean (limit 10%)'
    >>> short_warning("only 3 measured iterations (< 10): raise --min-iters or --min-time")
    'only 3 measured iterations (< 10)'
    """
    text = warning.removeprefix("unstable: ")
    for sep in ("; ", ": raise "):
        text = text.split(sep)[0]
    return text


def warm(samples_ms: Sequence[float], *, window: int = 5, tolerance: float = 0.05) -> bool:
    """True once warm-up has settled: the median of the last ``window`` samples differs from
    the median of the ``window`` before them by less than ``tolerance`` (relative).

    >>> warm([50, 30, 12, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    True
    >>> warm([50, 40, 30, 20, 15, 12, 11, 10, 9, 8])
    False
    """
    import numpy as np

    if len(samples_ms) < 2 * window:
        return False
    last = float(np.median(samples_ms[-window:]))
    before = float(np.median(samples_ms[-2 * window : -window]))
    if before <= 0:
        return True
    return abs(last - before) / before < tolerance
