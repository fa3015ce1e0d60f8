"""How many threads a command may ask for: at most :data:`THREADS_PER_CORE` times the cores this
process may use (:func:`usable_cores`: CPU affinity, cgroup quota),
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

import math
import os
from collections.abc import Iterable
from pathlib import Path

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
        cores = usable_cores()
    bound = max_threads(cores)
    if high > bound:
        raise UsageError(
            f"{option} {high} is more than {bound} ({THREADS_PER_CORE}x the {cores} "
            f"core{'s' * (cores != 1)} this process may use, at least {MIN_BOUND})",
            hint=f"use {option} {bound} or fewer; more threads than cores only measure "
            "oversubscription",
        )


def oversubscription(threads: Iterable[int], cores: int) -> str | None:
    """What is wrong with thread counts above ``cores`` (None: there are none): the note of a
    benchmark report, and the warning of ``infer``/``eval`` (:func:`oversubscription_warning`).

    >>> oversubscription([1, 2], cores=2) is None
    True
    """
    over = sorted({t for t in threads if t > cores})
    if not over:
        return None
    counts = " and ".join(str(t) for t in over)
    return (
        f"{counts} threads exceed the {cores} core{'s' if cores > 1 else ''} this process may use "
        "(CPU affinity / cgroup quota): those cells measure threads waiting for a core, not the "
        "model"
    )


def oversubscription_warning(threads: int, cores: int | None = None) -> str | None:
    """The warning ``infer`` and ``eval`` print for ``--threads`` above the usable cores
    (``cores``: default, :func:`usable_cores`), None when there is nothing to say.

    >>> print(oversubscription_warning(8, cores=2))
    warning: --threads 8 exceeds the 2 cores this process may use (CPU affinity / cgroup quota): \
the engine's threads wait for a core, and the timings measure that
    >>> oversubscription_warning(2, cores=2) is None
    True
    """
    if cores is None:
        cores = usable_cores()
    if threads <= cores:
        return None
    return (
        f"warning: --threads {threads} exceeds the {cores} core{'s' if cores > 1 else ''} this "
        "process may use (CPU affinity / cgroup quota): the engine's threads wait for a core, "
        "and the timings measure that"
    )


__all__ = [
    "MIN_BOUND",
    "THREADS_PER_CORE",
    "check_threads",
    "max_threads",
    "oversubscription",
    "oversubscription_warning",
]


def cpu_quota(cpu_max: str) -> int | None:
    """Cores a cgroup CPU quota allows: ``quota / period`` rounded up (None: no limit).

    ``cpu_max`` is cgroup v2's ``cpu.max`` (``"200000 100000"``, ``"max 100000"``) or cgroup
    v1's ``"<cfs_quota_us> <cfs_period_us>"`` (quota ``-1``: no limit).

    >>> cpu_quota("200000 100000"), cpu_quota("150000 100000"), cpu_quota("max 100000")
    (2, 2, None)
    >>> cpu_quota("-1 100000"), cpu_quota("garbage")
    (None, None)
    """
    parts = cpu_max.split()
    try:
        quota, period = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _cgroup_quota() -> int | None:
    """This process's cgroup CPU quota in cores (v2 ``cpu.max``, else v1 CFS), None: none."""
    root = Path("/sys/fs/cgroup")
    own = ""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = line[3:].strip().lstrip("/")
    except OSError:
        pass
    candidates = [root / own / "cpu.max"] if own else []
    candidates.append(root / "cpu.max")
    for f in candidates:
        try:
            return cpu_quota(f.read_text())
        except OSError:
            continue
    try:
        v1 = root / "cpu"
        text = f"{(v1 / 'cpu.cfs_quota_us').read_text()} {(v1 / 'cpu.cfs_period_us').read_text()}"
    except OSError:
        return None
    return cpu_quota(text)


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity mask (``os.sched_getaffinity``), capped
    by a cgroup CPU quota where there is one; ``os.cpu_count()`` where neither is known. This
    is the default ``--threads``; more threads than this measure oversubscription.

    >>> 1 <= usable_cores() <= (os.cpu_count() or 1)
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(n, quota) if quota else n)
