"""Whether a cell's latency may be compared with upstream's claim: only when it was measured
under the claim's conditions as the registry records them (:class:`~picozoo.hub.registry.
Conditions`: engine, threads, precision, post-processing; the device is what the ratio
compares). Otherwise the report gives no ratio and says which condition of the claim differed.

>>> from picozoo.bench.records import Failure
>>> from picozoo.hub.registry import Claims
>>> cell = Cell(model="m", engine="onnxruntime", threads=4, postprocess=True,
...             claims=Claims(latency_ms={"cpu": 6.6}), result=Failure(None, "x"))
>>> unlike_claim(cell)
'claim: paddle, 12 thr, without post-processing'
"""

from __future__ import annotations

from ..hub.registry import Conditions
from .records import Cell

#: The conditions of a CPU claim in a result written before claims carried theirs: the
#: picodet family's (the only one with CPU claims): Paddle Inference, 12 threads, fp32,
#: models exported without post-processing.
LEGACY_CPU_CONDITIONS = Conditions("paddle", 12, "fp32", False)


def claim_conditions(c: Cell, device: str = "cpu") -> Conditions | None:
    """How the claim ``c`` is compared with on ``device`` was measured (None: no such claim)."""
    claims = c.claims
    if claims is None or claims.latency_ms.get(device) is None:
        return None
    found = claims.conditions.get(device)
    if found is None and device == "cpu":
        return LEGACY_CPU_CONDITIONS
    return found or Conditions()


def unlike_claim(c: Cell, device: str = "cpu") -> str | None:
    """``claim: <its conditions that differ from the cell's>``; None when the cell was
    measured as the claim was (or there is no claim).

    >>> from picozoo.bench.records import Failure
    >>> from picozoo.hub.registry import Claims
    >>> cell = Cell(model="m", engine="paddle", threads=12, precision="fp32",
    ...             claims=Claims(latency_ms={"cpu": 6.6}), result=Failure(None, "x"))
    >>> unlike_claim(cell) is None
    True
    """
    cond = claim_conditions(c, device)
    if cond is None:
        return None
    differ = []
    if cond.engine is not None and cond.engine != c.engine:
        differ.append(cond.engine)
    if cond.precision is not None and cond.precision != (c.executed_precision or c.run_precision):
        differ.append(cond.precision)
    if cond.threads is not None and cond.threads != c.threads:
        differ.append(f"{cond.threads} thr")
    if cond.postprocess is not None and cond.postprocess != c.postprocess:
        differ.append("with post-processing" if cond.postprocess else "without post-processing")
    return f"claim: {', '.join(differ)}" if differ else None


def ratio_to_claim(c: Cell, device: str = "cpu") -> tuple[float | None, str | None]:
    """(measured median / claimed latency, why there is none): no ratio for a failed cell, a
    model without a claim, an oversubscribed cell (its mark says why) or a cell measured
    under other conditions than the claim (:func:`unlike_claim` says which)."""
    claimed = c.claims.latency_ms.get(device) if c.claims else None
    median = c.stats.median_ms if c.stats else None
    if median is None or not claimed or c.oversubscribed:
        return None, None
    why = unlike_claim(c, device)
    return (None, why) if why else (median / claimed, None)


def describe(cond: Conditions) -> str:
    """The conditions in words, for the footnote.

    >>> describe(LEGACY_CPU_CONDITIONS)
    'paddle, 12 threads, fp32, model without post-processing'
    """
    parts = [cond.engine or "", f"{cond.threads} threads" if cond.threads else "",
             cond.precision or ""]  # fmt: skip
    if cond.postprocess is not None:
        parts.append(f"model {'with' if cond.postprocess else 'without'} post-processing")
    return ", ".join(p for p in parts if p)
