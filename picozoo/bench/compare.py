"""The cross-engine view of a benchmark: model x engine x precision, and the fastest way to run
each model on the machine that measured it.

Both read the flat rows of :func:`picozoo.bench.report.flat_rows`. The table is shown when a
result has more than one (engine, precision): per model and thread count, the fastest first,
with each engine's version, median and p90 latency, the mAP ``picozoo eval`` measured on the
benched file (and its difference to upstream's claim) where there is one, and how many times
slower than that group's fastest it is. Failed cells are listed last with their stage.

The "fastest on this machine" line of a model names its lowest median (cells with more threads
than cores aside) and how much faster it is than upstream's own CPU method (Paddle Inference,
fp32) at the same thread count when that was measured. When eval measured mAPs for the model,
a fastest cell whose mAP is more than :data:`MAP_TOLERANCE` below the best fp32 one is not
taken as is: the line also names the fastest cell within that tolerance.

>>> row = {"display": "m", "input_size": "64*64", "postprocess": False, "engine": "paddle",
...        "precision": "fp32", "engine_version": "3.2.2", "threads": 2, "status": "ok",
...        "median_ms": 9.0, "p90_ms": 9.5, "map_measured": None, "map_delta": None,
...        "oversubscribed": False, "error": None}
>>> print(*fastest_lines([row, {**row, "engine": "openvino", "median_ms": 4.5}]))
Fastest on this machine: m (64*64): openvino fp32, 2 thr: 4.50 ms median (2.00x faster than \
Paddle Inference fp32, upstream's CPU method, at 2 thr)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: mAP points a faster engine/precision may lose against fp32 and still count as "as accurate"
MAP_TOLERANCE = 0.5

HEADERS = [
    "Model",
    "Input size",
    "Engine",
    "Precision",
    "Version",
    "Threads",
    "Median<br><sup>(ms)",
    "p90<br><sup>(ms)",
    "mAP<sup>measured<br>(Δ claim)",
    "vs fastest",
]


def _model(r: dict[str, Any]) -> str:
    return r["display"] + (" (w/ postprocess)" if r["postprocess"] else "")


def combos(rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (engine, precision) pairs of ``rows``."""
    return {(r["engine"], r["precision"]) for r in rows}


def measured_map_text(r: dict[str, Any]) -> str:
    """``31.9 (-0.6)``: measured mAP and its difference to the claim; ``-`` without an eval.

    >>> measured_map_text({"map_measured": 31.91, "map_delta": -0.59})
    '31.9 (-0.6)'
    """
    if r.get("map_measured") is None:
        return "-"
    delta = r.get("map_delta")
    return f"{r['map_measured']:.1f}" + (f" ({delta:+.1f})" if delta is not None else "")


def _ok(r: dict[str, Any]) -> bool:
    return r["status"] == "ok" and r["median_ms"] is not None


def cross_engine_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    """Headers and body of the cross-engine table; None with a single (engine, precision)."""
    if len(combos(rows)) < 2:
        return None
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((_model(r), r["input_size"] or "-", r["threads"]), []).append(r)
    body = []
    for (model, size, threads), members in groups.items():
        ok = sorted((r for r in members if _ok(r)), key=lambda r: r["median_ms"])
        best = ok[0]["median_ms"] if ok else None
        for r in ok + [r for r in members if not _ok(r)]:
            thr = f"{threads} (*)" if r["oversubscribed"] else str(threads)
            head = [model, size, r["engine"], r["precision"], r["engine_version"] or "-", thr]
            if _ok(r):
                vs = f"{r['median_ms'] / best:.2f}x" if best else "-"
                tail = [f"{r['median_ms']:.2f}", f"{r['p90_ms']:.2f}", measured_map_text(r), vs]
            else:
                tail = [f"failed ({r.get('stage') or 'error'})", "-", "-", "-"]
            body.append(head + tail)
    return list(HEADERS), body


def _name(r: dict[str, Any]) -> str:
    return f"{r['engine']} {r['precision']}, {r['threads']} thr"


def fastest_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One "Fastest on this machine" line per model with a measured cell (see the module
    docstring)."""
    models: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if _ok(r) and not r["oversubscribed"]:
            models.setdefault((_model(r), r["input_size"] or "-"), []).append(r)
    out = []
    for (model, size), ok in models.items():
        ok = sorted(ok, key=lambda r: r["median_ms"])
        line = f"Fastest on this machine: {model} ({size}): {_describe(ok[0], ok)}"
        ref = max(
            (r["map_measured"] for r in ok if r["precision"] == "fp32" and r["map_measured"]),
            default=None,
        )
        fast_map = ok[0]["map_measured"]
        if ref is not None and fast_map is not None and ref - fast_map > MAP_TOLERANCE:
            within = [
                r for r in ok if r["map_measured"] is not None
                and ref - r["map_measured"] <= MAP_TOLERANCE
            ]  # fmt: skip
            line += (
                f"; it loses {ref - fast_map:.1f} mAP against fp32 ({ref:.1f}): the fastest "
                f"within {MAP_TOLERANCE} mAP is {_describe(within[0], ok)}"
            )
        out.append(line)
    return out


def _describe(r: dict[str, Any], ok: Sequence[dict[str, Any]]) -> str:
    """``openvino fp32, 2 thr: 4.50 ms median (2.00x faster than ...)``, with its measured mAP."""
    text = f"{_name(r)}: {r['median_ms']:.2f} ms median"
    if r["map_measured"] is not None:
        text += f", mAP {measured_map_text(r)}"
    upstream = next(
        (
            u
            for u in ok
            if (u["engine"], u["precision"], u["threads"]) == ("paddle", "fp32", r["threads"])
        ),
        None,
    )
    if upstream is not None and upstream is not r:
        speedup = upstream["median_ms"] / r["median_ms"]
        text += (
            f" ({speedup:.2f}x faster than Paddle Inference fp32, upstream's CPU method, "
            f"at {r['threads']} thr)"
        )
    return text
