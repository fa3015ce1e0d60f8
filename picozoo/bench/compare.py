"""The cross-engine view of a benchmark: model x engine x precision, and the fastest way to run
each model on the machine that measured it.

Both read the rows of :func:`picozoo.bench.rows.report_rows`. The table is shown when a
result has more than one (engine, precision): per model and thread count, the fastest first,
with each engine's version, median and p90 latency, the mAP ``picozoo eval`` measured on the
benched file (and its difference to upstream's claim) where there is one, and how many times
slower than that group's fastest it is. Failed cells are listed last with their stage.

The "fastest on this machine" line of a model (one per machine of a ``bench --cluster`` run,
named: cells of different machines are never compared) names its lowest median (cells with
more threads than cores aside) and how much faster it is than upstream's own CPU method
(Paddle Inference, fp32) at the same thread count when that was measured. When eval measured
mAPs for the model, a fastest cell whose mAP is more than :data:`MAP_TOLERANCE` below the best
fp32 one on the same data set is not taken as is: the line also names the fastest cell within
that tolerance. mAPs measured on different data sets, or with different NMS settings, are
never compared (the line says so).

>>> import dataclasses
>>> row = ReportRow(display="m", input_size="64*64", engine="paddle", precision="fp32",
...                 engine_version="3.2.2", threads=2, median_ms=9.0, p90_ms=9.5)
>>> print(*fastest_lines([row, dataclasses.replace(row, engine="openvino", median_ms=4.5)]))
Fastest on this machine: m (64*64): openvino fp32, 2 thr: 4.50 ms median (2.00x faster than \
Paddle Inference fp32, upstream's CPU method, at 2 thr)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..render import Markup
from .notes import UNSTABLE_MARK
from .records import SKIPPED
from .rows import ReportRow

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


def combos(rows: Sequence[ReportRow]) -> set[tuple[str, str]]:
    """The (engine, precision) pairs of ``rows``."""
    return {(r.engine, r.precision) for r in rows}


def measured_map_text(r: ReportRow) -> str:
    """``31.9 (-0.6)``: measured mAP on COCO val2017 and its difference to the claim; on
    another set, the set (``100.0 (on ann.json, 4 images)``); ``-`` without an eval.

    >>> measured_map_text(ReportRow(map_measured=31.91, map_delta=-0.59, eval_coco_val2017=True))
    '31.9 (-0.6)'
    >>> measured_map_text(ReportRow(map_measured=100.0, eval_set_short="ann.json, 4 images"))
    '100.0 (on ann.json, 4 images)'
    """
    if r.map_measured is None:
        return "-"
    text = f"{r.map_measured:.1f}"
    if not r.eval_coco_val2017:
        return text + (f" (on {r.eval_set_short})" if r.eval_set_short else "")
    return text + (f" ({r.map_delta:+.1f})" if r.map_delta is not None else "")


def cross_engine_table(rows: Sequence[ReportRow]) -> tuple[list[str], list[list[str]]] | None:
    """Headers and body of the cross-engine table; None with a single (engine, precision)."""
    if len(combos(rows)) < 2:
        return None
    fleet = any(r.machine for r in rows)
    groups: dict[tuple[str, str, str, int], list[ReportRow]] = {}
    for r in rows:
        key = (r.shown_name, r.input_size or "-", r.machine or "", r.threads)
        groups.setdefault(key, []).append(r)
    headers = [*HEADERS[:2], "Machine", *HEADERS[2:]] if fleet else HEADERS
    body = [line for g in groups.items() for line in _group_lines(*g, fleet=fleet)]
    return [Markup(h) for h in headers], body


def _group_lines(
    key: tuple[str, str, str, int], members: list[ReportRow], *, fleet: bool = False
) -> list[list[str]]:
    """The lines of one (model, input size, machine, threads): measured cells fastest first,
    then the failed ones. "vs fastest" never compares machines: a fleet run groups by machine
    and names it."""
    model, size, machine, threads = key
    ok = _by_median(r for r in members if r.ok)
    best = ok[0].median_ms if ok else None
    lines = []
    for r in ok + [r for r in members if not r.ok]:
        thr = f"{threads} (*)" if r.oversubscribed else str(threads)
        where = [machine or "-"] if fleet else []
        head = [model, size, *where, r.engine, r.precision, r.engine_version or "-", thr]
        lines.append(head + _engine_cells(r, best))
    return lines


def _engine_cells(r: ReportRow, best: float | None) -> list[str]:
    """Median (marked when unstable), p90, measured mAP and "vs fastest" of one cell; its
    failed stage if it failed."""
    if not r.ok or r.median_ms is None:
        return [
            "skipped" if r.stage == SKIPPED else f"failed ({r.stage or 'error'})",
            "-",
            "-",
            "-",
        ]
    vs = f"{r.median_ms / best:.2f}x" if best else "-"
    median = f"{r.median_ms:.2f}" + (f" {UNSTABLE_MARK}" if r.stable is False else "")
    return [median, _ms(r.p90_ms), measured_map_text(r), vs]


def _ms(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


def _by_median(rows: Iterable[ReportRow]) -> list[ReportRow]:
    """Measured rows, fastest first."""
    return sorted(rows, key=lambda r: r.median_ms if r.median_ms is not None else float("inf"))


def fastest_lines(rows: Sequence[ReportRow]) -> list[str]:
    """One "Fastest on this machine" line per model with a measured cell (see the module
    docstring)."""
    models: dict[tuple[str, str, str], list[ReportRow]] = {}
    for r in rows:
        if r.ok and not r.oversubscribed:
            models.setdefault((r.machine or "", r.shown_name, r.input_size or "-"), []).append(r)
    return [_fastest(*key, _by_median(ok)) for key, ok in models.items()]


def _fastest(machine: str, model: str, size: str, ok: Sequence[ReportRow]) -> str:
    """The line of one model on one machine (``ok``: its measured cells there, fastest
    first); a fleet machine is named, cells of other machines are never compared."""
    where = f"on {machine}" if machine else "on this machine"
    line = f"Fastest {where}: {model} ({size}): {_describe(ok[0], ok)}"
    return line + _accuracy_caveat(ok)


def _accuracy_caveat(ok: Sequence[ReportRow]) -> str:
    """When the fastest cell loses more than :data:`MAP_TOLERANCE` mAP against the best fp32
    one on the same data set: how much, and the fastest cell within that tolerance on that
    set; when the cells' mAPs were measured on different sets, that they are not compared
    (else "")."""
    fast = ok[0]
    sets = {r.eval_set_key for r in ok if r.map_measured is not None and r.eval_set_key}
    note = ""
    if len({key[:2] for key in sets}) > 1:
        note = "; mAPs measured on different data sets are not compared"
    elif len(sets) > 1:  # one set, decoded with other NMS settings (eval --nms/--iou/--conf)
        note = "; mAPs measured with different NMS settings are not compared"
    if fast.map_measured is None:
        return note
    same = [r for r in ok if r.map_measured is not None and r.eval_set_key == fast.eval_set_key]
    ref = max((r.map_measured for r in same if r.precision == "fp32" and r.map_measured),
              default=None)  # fmt: skip
    if ref is None or ref - fast.map_measured <= MAP_TOLERANCE:
        return note
    within = [
        r for r in same if r.map_measured is not None and ref - r.map_measured <= MAP_TOLERANCE
    ]
    on = "" if fast.eval_coco_val2017 else f" on {fast.eval_set_short}"
    return (
        f"; it loses {ref - fast.map_measured:.1f} mAP against fp32 ({ref:.1f}){on}: the "
        f"fastest within {MAP_TOLERANCE} mAP is {_describe(within[0], ok)}{note}"
    )


def _describe(r: ReportRow, ok: Sequence[ReportRow]) -> str:
    """``openvino fp32, 2 thr: 4.50 ms median (2.00x faster than ...)``, with its measured mAP."""
    text = f"{r.engine} {r.precision}, {r.threads} thr: {_ms(r.median_ms)} ms median"
    if r.map_measured is not None:
        text += f", mAP {measured_map_text(r)}"
    upstream = next(
        (u for u in ok if (u.engine, u.precision, u.threads) == ("paddle", "fp32", r.threads)),
        None,
    )
    if upstream is not None and upstream is not r:
        assert upstream.median_ms is not None and r.median_ms is not None  # measured cells
        speedup = upstream.median_ms / r.median_ms
        text += (
            f" ({speedup:.2f}x faster than Paddle Inference fp32, upstream's CPU method, "
            f"at {r.threads} thr)"
        )
    return text
