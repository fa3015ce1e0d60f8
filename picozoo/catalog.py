"""Tabular views of the registry for ``picozoo list``: rows, filters and sorting.

>>> from picozoo.hub.registry import load_registry
>>> rows = list_models(load_registry(), family="picodet", filters=["map>40"])
>>> [r["id"] for r in rows]
['picodet-l-640']
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .hub.registry import Model, Registry

#: Columns of ``picozoo list``: (row key, header).
LIST_COLUMNS: list[tuple[str, str]] = [
    ("id", "Model"),
    ("input_size", "Input size"),
    ("map", "mAP 0.5:0.95"),
    ("map50", "mAP 0.5"),
    ("params_m", "Params (M)"),
    ("flops_g", "FLOPs (G)"),
    ("latency_cpu_ms", "CPU ms"),
    ("latency_lite_ms", "Lite ms"),
    ("latency_ncnn_ms", "NCNN ms"),
    ("family", "Family"),
]

#: Names accepted in ``--filter``/``--sort`` and the row keys they stand for.
FIELD_ALIASES: dict[str, str] = {
    "map": "map",
    "map50": "map50",
    "params": "params_m",
    "params_m": "params_m",
    "flops": "flops_g",
    "flops_g": "flops_g",
    "cpu": "latency_cpu_ms",
    "lite": "latency_lite_ms",
    "ncnn": "latency_ncnn_ms",
    "size": "size",
    "input": "size",
    "id": "id",
    "family": "family",
}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_FILTER = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|!=|==|=|>|<)\s*(\S.*?)\s*$")


def model_row(model: Model) -> dict[str, Any]:
    """One flat row describing a model and upstream's claims about it."""
    c = model.claims
    h, w = model.input_size
    return {
        "id": model.id,
        "name": model.name,
        "family": model.family,
        "input_size": f"{h}*{w}",
        "size": h,
        "map": c.map,
        "map50": c.map50,
        "params_m": c.params_m,
        "flops_g": c.flops_g,
        "latency_cpu_ms": c.latency_ms.get("cpu"),
        "latency_lite_ms": c.latency_ms.get("lite"),
        "latency_ncnn_ms": c.latency_ms.get("ncnn"),
        "artifacts": len(model.artifacts),
    }


@dataclass(frozen=True)
class Filter:
    """A parsed ``--filter`` expression such as ``map>30`` or ``family==picodet``."""

    key: str
    op: str
    value: float | str

    def __call__(self, row: dict[str, Any]) -> bool:
        have = row.get(self.key)
        if have is None:
            return False
        if isinstance(self.value, float) and not isinstance(have, (int, float)):
            return False
        if isinstance(self.value, str):
            have = str(have)
        return _OPS[self.op](have, self.value)


def parse_filter(text: str) -> Filter:
    """Parse ``FIELD OP VALUE``; raises :class:`UsageError` naming the valid fields."""
    m = _FILTER.match(text.lower())
    if not m:
        raise UsageError(
            f"cannot parse filter {text!r}",
            hint="write FIELD OP VALUE, e.g. 'map>30' or 'cpu<=10'",
        )
    name, op, raw = m.groups()
    key = FIELD_ALIASES.get(name)
    if key is None:
        raise UsageError(
            f"unknown filter field {name!r}", hint=f"use one of {', '.join(FIELD_ALIASES)}"
        )
    value: float | str
    try:
        value = float(raw)
    except ValueError as e:
        if op not in ("=", "==", "!="):
            raise UsageError(
                f"filter {text!r} compares with {op!r} but {raw!r} is not a number",
                hint="use a number, e.g. 'map>30'",
            ) from e
        value = raw
    return Filter(key, op, value)


def list_models(
    registry: Registry,
    *,
    family: str | None = None,
    filters: Sequence[str] = (),
    sort: str | None = None,
) -> list[dict[str, Any]]:
    """Rows for ``picozoo list``, filtered and sorted (``-field`` sorts descending)."""
    if family is not None and family not in registry.families:
        raise UsageError(
            f"unknown family {family!r}", hint=f"use one of {', '.join(registry.families)}"
        )
    parsed = [parse_filter(f) for f in filters]
    rows = [model_row(m) for m in registry.models if (family is None or m.family == family)]
    rows = [r for r in rows if all(f(r) for f in parsed)]
    if sort:
        desc = sort.startswith("-")
        key = FIELD_ALIASES.get(sort.lstrip("-+").lower())
        if key is None:
            raise UsageError(
                f"unknown sort field {sort!r}", hint=f"use one of {', '.join(FIELD_ALIASES)}"
            )
        present = [r for r in rows if r.get(key) is not None]
        missing = [r for r in rows if r.get(key) is None]
        rows = sorted(present, key=lambda r: r[key], reverse=desc) + missing
    return rows
