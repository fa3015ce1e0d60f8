"""How many threads a command may ask for: at most :data:`THREADS_PER_CORE` times the cores this
process may use (:func:`picozoo.bench.environment.usable_cores`: CPU affinity, cgroup quota),
and never less than :data:`MIN_BOUND` (upstream's CPU latencies were measured at 12 threads;
a smaller machine may still bench that setting, marked oversubscribed).

Each engine thread has its own stack and scratch buffers: ``--threads 100000`` grew a bench
worker by ~40 MB/s until its timeout. A few times the usable cores still lets a benchmark
measure oversubscription (marked as such); beyond that no measurement means anything.

>>> check_threads([1, 12], cores=2)
>>> check_threads([17], cores=2)
Traceback (most recent call last):
...
picozoo.errors.UsageError: --threads 17 is more than 16 (4x the 2 cores this process may use, \
at least 16) (use --threads 16 or fewer; more threads than cores only measure oversubscription)
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import UsageError

#: The bound: this many threads per usable core...
THREADS_PER_CORE = 4
#: ...and at least this many (upstream's 12 threads, on any machine).
MIN_BOUND = 16


def max_threads(cores: int | None = None) -> int:
    """The most threads a command may ask for (``cores``: default, the usable cores).

    >>> max_threads(cores=3), max_threads(cores=8)
    (16, 32)
    """
    if cores is None:
        from .bench.environment import usable_cores

        cores = usable_cores()
    return max(MIN_BOUND, THREADS_PER_CORE * max(1, cores))


def check_threads(
    counts: Iterable[int], *, option: str = "--threads", cores: int | None = None
) -> None:
    """Raise :class:`~picozoo.errors.UsageError` for a thread count below 1 or above
    :func:`max_threads`."""
    counts = list(counts)
    if not counts:
        return
    low = min(counts)
    if low < 1:
        raise UsageError(f"{option} {low} is not a thread count", hint=f"use {option} 1 or more")
    high = max(counts)
    if cores is None:
        from .bench.environment import usable_cores

        cores = usable_cores()
    bound = max_threads(cores)
    if high > bound:
        raise UsageError(
            f"{option} {high} is more than {bound} ({THREADS_PER_CORE}x the {cores} "
            f"core{'s' * (cores != 1)} this process may use, at least {MIN_BOUND})",
            hint=f"use {option} {bound} or fewer; more threads than cores only measure "
            "oversubscription",
        )


__all__ = ["MIN_BOUND", "THREADS_PER_CORE", "check_threads", "max_threads"]
