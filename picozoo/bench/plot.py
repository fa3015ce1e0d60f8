"""mAP-vs-latency plots like upstream's ``picodet_map.png`` (matplotlib, headless).

Measured cells with a known mAP are drawn as one series per (device, engine, precision,
threads), beside upstream's claimed CPU curve (i7-10750H, Paddle Inference, 12 threads). Colours
are the engine's (:data:`ENGINE_COLORS`), so a cross-engine result reads at a glance. A point's
mAP is the one ``picozoo eval`` measured on the benched file when there is one (filled marker),
else upstream's claim for the model (hollow marker, "claimed mAP" in the legend). Cells without
any mAP (plain ONNX files) are drawn as labelled vertical lines at their measured latency.

The mAP axis names its data set: upstream's claims and measured mAPs of all of COCO val2017
share the main panel ("COCO val2017 mAP"); an mAP measured on another set (a subset, your own
annotations) gets a panel of its own, named after that set, never the COCO axis. The latency
axis is logarithmic when the points span more than :data:`LOG_SPAN` times. A label is drawn
once for identical labels at the same place (``PicoDet-S 416 (3 points)``); a point of an
unstable cell is marked ``(!)``, of an oversubscribed one ``(*)``, and faded; a note under the
plot explains the marks. Labels never overprint each other (:func:`place_labels`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import require
from .notes import OVERSUBSCRIBED_MARK, UNSTABLE_MARK
from .rows import ReportRow


def upstream_reference() -> list[dict[str, Any]]:
    """Upstream's claimed (CPU latency, mAP) of every model in the packaged registry.

    >>> upstream_reference()[0]
    {'label': 'PicoDet-XS 320', 'latency_ms': 3.9, 'map': 23.5}
    """
    try:
        from ..hub.registry import load_registry

        reg = load_registry()
    except Exception:  # a broken registry must not break a plot
        return []
    out = []
    for m in reg.models:
        cpu = m.claims.latency_ms.get("cpu")
        if cpu is not None and m.claims.map is not None and not m.quantized:
            out.append(
                {"label": f"{m.name} {m.input_size[0]}", "latency_ms": cpu, "map": m.claims.map}
            )
    return sorted(out, key=lambda r: r["latency_ms"])


#: The ``gid`` of every point label (tests and :func:`place_labels` find them by it).
LABEL_GID = "picozoo-label"
#: One colour per engine (matplotlib's tab10 order); other series use the default cycle.
ENGINE_COLORS = {
    "onnxruntime": "#1f77b4",
    "paddle": "#d62728",
    "openvino": "#9467bd",
    "mnn": "#2ca02c",
    "ncnn": "#ff7f0e",
    "lite": "#8c564b",
}
#: Markers of the successive series of one engine (precisions, thread counts, devices).
MARKERS = ("s", "o", "^", "D", "v", "P", "X", "*")
#: The latency axis is logarithmic when the slowest point is this many times the fastest.
LOG_SPAN = 30.0
#: The y label of the main panel: upstream's claims, and mAPs of all of COCO val2017.
COCO_AXIS = "COCO val2017 mAP 0.5:0.95 (%)"
#: Identical labels whose points are closer than this (pixels) are drawn once.
SAME_PLACE_PX = 30.0
#: What each mark on a point means (the note under a plot says the ones it uses).
MARK_TEXTS = {
    UNSTABLE_MARK: f"{UNSTABLE_MARK} unstable latency",
    OVERSUBSCRIBED_MARK: f"{OVERSUBSCRIBED_MARK} more threads than cores: measures waiting for a "
    "core",
}
#: The note under a plot with both marks.
MARKS_NOTE = "   ".join(MARK_TEXTS.values())


def map_vs_latency_png(
    series: Sequence[dict[str, Any]],
    *,
    title: str = "mAP vs latency",
    reference: Sequence[dict[str, Any]] | None = None,
) -> bytes:
    """PNG bytes of the plot (see :func:`map_vs_latency_figure`).

    >>> map_vs_latency_png([{"name": "laptop", "points": [
    ...     {"label": "PicoDet-S 416", "latency_ms": 7.1, "map": 32.5}]}])[:4]
    b'\\x89PNG'
    """
    fig = map_vs_latency_figure(series, title=title, reference=reference)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def map_vs_latency_figure(
    series: Sequence[dict[str, Any]],
    *,
    title: str = "mAP vs latency",
    reference: Sequence[dict[str, Any]] | None = None,
    declutter: bool = True,
) -> Any:
    """The plot as a matplotlib Figure (the caller closes it): upstream's claimed points,
    one marker series per entry of ``series``, vertical lines for points without an mAP.
    Labels name models the same way everywhere (``PicoDet-S 416``); with ``declutter`` they are
    moved apart until no two overlap (:func:`place_labels`).

    ``series``: ``[{"name": str, "engine": str (optional: its colour), "points": [{"label",
    "latency_ms", "map"|None, "measured": bool (optional, default True: a filled marker)},
    ...]}]``.

    >>> import matplotlib.pyplot as plt
    >>> fig = map_vs_latency_figure([], reference=[])
    >>> fig.axes[0].get_xlabel()
    'Latency (ms, median)'
    >>> plt.close(fig)
    """
    matplotlib = require("matplotlib", "bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # names come from result files: shown as text, never parsed as mathtext ("$...$") or TeX
    sets = data_sets(series)
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        fig, axes = plt.subplots(
            1 + len(sets),
            1,
            figsize=(8, 5.5 + 3.0 * len(sets)),
            dpi=110,
            sharex=True,
            squeeze=False,
            height_ratios=[5.5] + [3.0] * len(sets),
        )
        _fill(fig, list(axes[:, 0]), series, sets, title=title, reference=reference,
              declutter=declutter)  # fmt: skip
    return fig


def data_sets(series: Sequence[dict[str, Any]]) -> list[str]:
    """The data sets other than COCO val2017 whose measured mAPs the series hold, in order.

    >>> data_sets([{"points": [{"map": 1.0, "set": "a.json, 4 images"}, {"map": 30.0}]}])
    ['a.json, 4 images']
    """
    out = [p.get("set") for s in series for p in s["points"] if p.get("map") is not None]
    return [x for x in dict.fromkeys(out) if x]


def _subset(series: Sequence[dict[str, Any]], data_set: str | None) -> list[dict[str, Any]]:
    """``series`` with only the points of ``data_set`` (None: COCO val2017, the claims and
    the points without an mAP)."""
    out = []
    for s in series:
        pts = [
            p
            for p in s["points"]
            if (p.get("set") if p.get("map") is not None else None) == data_set
        ]
        out.append({**s, "points": pts})
    return out


def _fill(
    fig: Any,
    axes: list[Any],
    series: Sequence[dict[str, Any]],
    sets: list[str],
    *,
    title: str,
    reference: Sequence[dict[str, Any]] | None,
    declutter: bool,
) -> None:
    """Draw the plot of :func:`map_vs_latency_figure` on ``axes`` (the COCO panel, then one
    per other data set); ``fig`` is closed on failure."""
    import matplotlib.pyplot as plt

    try:
        ref = list(upstream_reference() if reference is None else reference)
        markers = _markers(series)
        claims = _draw_reference(axes[0], ref)
        labels = _draw(axes[0], _subset(series, None), markers, ref)
        axes[0].set_ylabel(COCO_AXIS)
        axes[0].set_title(title, fontsize=10)
        for ax, data_set in zip(axes[1:], sets, strict=True):
            labels += _draw(ax, _subset(series, data_set), markers, [])
            ax.set_ylabel(f"mAP 0.5:0.95 (%)\non {data_set}", fontsize=8)
        _set_x(axes, series, ref)
        for ax in axes:
            ax.set_xlabel("Latency (ms, median)")
            ax.grid(True, alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
        used = " ".join(str(p.get("marks") or "") for s in series for p in s["points"])
        marked = [text for mark, text in MARK_TEXTS.items() if mark in used]
        if marked:
            fig.text(0.01, 0.005, "   ".join(marked), fontsize=7, color="0.3",
                     gid="picozoo-marks")  # fmt: skip
        fig.tight_layout(rect=(0, 0.03 if marked else 0, 1, 1))
        if declutter:
            place_labels(fig, claims + same_place_once(fig, labels))
        else:
            labels += claims
    except BaseException:
        plt.close(fig)
        raise


def _label(
    ax: Any, text: str, xy: tuple[float, float], offset: tuple[float, float], **kw: Any
) -> Any:
    return ax.annotate(text, xy, xytext=offset, textcoords="offset points", gid=LABEL_GID, **kw)


def _draw(
    ax: Any, series: Sequence[dict[str, Any]], markers: list[str], ref: list[dict[str, Any]]
) -> list[Any]:
    """Draw every point and line of one panel (``ref``: upstream's claims, drawn already);
    return the label annotations."""
    labels: list[Any] = []
    unmapped: list[tuple[str, float]] = []
    for s, marker in zip(series, markers, strict=True):
        pts = sorted(
            (p for p in s["points"] if p.get("latency_ms") is not None),
            key=lambda p: p["latency_ms"],
        )
        labels += _draw_series(ax, s, pts, marker)
        unmapped += [
            (f"{_text(p)} ({s['name']})", p["latency_ms"]) for p in pts if p.get("map") is None
        ]
    _set_y(ax, series, ref)
    return labels + _draw_unmapped(ax, unmapped)


def _text(p: dict[str, Any]) -> str:
    """A point's label with its marks (``PicoDet-S 416 (!)``)."""
    return f"{p['label']} {p['marks']}" if p.get("marks") else str(p["label"])


def _draw_reference(ax: Any, ref: list[dict[str, Any]]) -> list[Any]:
    """Upstream's claimed points, grey, with their labels."""
    if not ref:
        return []
    ax.plot(
        [r["latency_ms"] for r in ref],
        [r["map"] for r in ref],
        "o",
        color="0.6",
        label="upstream claim (i7-10750H, Paddle Inference, 12 threads)",
    )
    return [
        _label(ax, r["label"], (r["latency_ms"], r["map"]), (3, -8), fontsize=6, color="0.4")
        for r in ref
    ]


def _markers(series: Sequence[dict[str, Any]]) -> list[str]:
    """One marker per series: the successive series of one engine get the next marker."""
    per_engine: dict[str, int] = {}
    out = []
    for s in series:
        engine = s.get("engine") or ""
        out.append(MARKERS[per_engine.get(engine, 0) % len(MARKERS)])
        per_engine[engine] = per_engine.get(engine, 0) + 1
    return out


def _draw_series(ax: Any, s: dict[str, Any], pts: list[dict[str, Any]], marker: str) -> list[Any]:
    """The points of one series that have an mAP (measured: filled, claimed: hollow), in the
    engine's colour, with their labels."""
    labels = []
    color = ENGINE_COLORS.get(s.get("engine") or "")
    for measured in (True, False):
        group = [p for p in pts if p.get("map") is not None and p.get("measured", True) == measured]
        if not group:
            continue
        (line,) = ax.plot(
            [p["latency_ms"] for p in group],
            [p["map"] for p in group],
            marker,
            linestyle="none",
            color=color,
            markerfacecolor=None if measured else "none",
            label=s["name"] + ("" if measured else " (claimed mAP)"),
        )
        color = line.get_color()
        marked = [p for p in group if p.get("marks")]
        if marked:  # unstable or oversubscribed: a faded ring around the marker
            ax.plot([p["latency_ms"] for p in marked], [p["map"] for p in marked], "o",
                    markersize=13, markerfacecolor="none", markeredgecolor=color, alpha=0.5,
                    linestyle="none")  # fmt: skip
        labels += [
            _label(ax, _text(p), (p["latency_ms"], p["map"]), (4, 4), fontsize=7, color=color)
            for p in group
        ]
    return labels


def _set_y(ax: Any, series: Sequence[dict[str, Any]], ref: list[dict[str, Any]]) -> None:
    """y around the points (20-45 without any mAP)."""
    points = [p for s in series for p in s["points"]]
    if ref or any(p.get("map") is not None for p in points):
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo - 1.0, hi + 1.0)
    else:
        ax.set_ylim(20.0, 45.0)


def log_latency(xs: Sequence[float]) -> bool:
    """True when latencies span more than :data:`LOG_SPAN` times (a log axis reads them).

    >>> log_latency([3.9, 740.0]), log_latency([3.9, 20.0])
    (True, False)
    """
    xs = [x for x in xs if x > 0]
    return bool(xs) and max(xs) / min(xs) > LOG_SPAN


def _set_x(axes: list[Any], series: Sequence[dict[str, Any]], ref: list[dict[str, Any]]) -> None:
    """x from 0 past the slowest point, or logarithmic around them when they span decades."""
    xs = [float(r["latency_ms"]) for r in ref]
    xs += [float(p["latency_ms"]) for s in series for p in s["points"]
           if p.get("latency_ms") is not None]  # fmt: skip
    if not xs:
        return
    if log_latency(xs):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        positive = [x for x in xs if x > 0]
        for ax in axes:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        axes[0].set_xlim(min(positive) / 1.3, max(positive) * 1.3)
    else:
        axes[0].set_xlim(0, max(xs) * 1.12)


def _draw_unmapped(ax: Any, unmapped: list[tuple[str, float]]) -> list[Any]:
    """A labelled vertical line at the latency of each point without an mAP."""
    ymin = ax.get_ylim()[0]
    labels = []
    for i, (text, lat) in enumerate(unmapped):
        line = ax.axvline(lat, linestyle=":", color=f"C{(i + 3) % 10}")
        labels.append(
            _label(
                ax,
                f" {text}: {lat:.1f} ms (no mAP) ",
                (lat, ymin + 0.3),
                (0, 0),
                rotation=90,
                va="bottom",
                ha="right",
                fontsize=7,
                color=line.get_color(),
            )
        )
    return labels


#: the colour of a label naming points of different colours (engines): none of theirs
MIXED_LABEL_COLOR = "0.2"


def same_place_once(fig: Any, labels: Sequence[Any]) -> list[Any]:
    """``labels`` (of measured cells; upstream's claims are not among them) with identical
    texts whose points are within :data:`SAME_PLACE_PX` of each other drawn once: the first
    stays and says how many points it names (``(3 points)``), the others are removed; a label
    naming points of different colours (engines) is drawn in :data:`MIXED_LABEL_COLOR`, so it
    never looks like one engine's. Returns the labels that stay.

    >>> fig = map_vs_latency_figure([{"name": f"s{i}", "points": [
    ...     {"label": "m", "latency_ms": 7.0, "map": 30.0}]} for i in range(10)], reference=[])
    >>> [t.get_text() for t in fig.axes[0].texts if t.get_gid() == LABEL_GID]
    ['m (10 points)']
    """
    fig.canvas.draw()
    # (annotation, anchor in pixels, the colour of each point it names)
    kept: list[tuple[Any, Any, list[tuple[float, ...]]]] = []
    for ann in labels:
        xy = ann.axes.transData.transform(ann.xy)
        same = next(
            (
                k
                for k in kept
                if k[0].get_text() == ann.get_text()
                and k[0].axes is ann.axes
                and abs(k[1][0] - xy[0]) <= SAME_PLACE_PX
                and abs(k[1][1] - xy[1]) <= SAME_PLACE_PX
            ),
            None,
        )
        if same is None:
            kept.append((ann, xy, [_rgba(ann.get_color())]))
        else:
            same[2].append(_rgba(ann.get_color()))
            ann.remove()
    for ann, _, colours in kept:
        if len(colours) > 1:
            ann.set_text(f"{ann.get_text()} ({len(colours)} points)")
        if len(set(colours)) > 1:  # points of several engines/series: no one's colour
            ann.set_color(MIXED_LABEL_COLOR)
    return [ann for ann, _, _ in kept]


def _rgba(colour: Any) -> tuple[float, ...]:
    from matplotlib.colors import to_rgba

    return tuple(to_rgba(colour))


def place_labels(fig: Any, labels: Sequence[Any], *, max_steps: int = 60) -> None:
    """Move label annotations (offsets in points) until no two text boxes overlap.

    Labels are placed in order of their anchor's x; each keeps its preferred offset when that
    is free, else is moved one label height up, down, two up... (rotated labels of vertical
    lines: one label width sideways) to the first free place, and gets a thin leader line to
    its point.

    >>> fig = map_vs_latency_figure([{"name": "pc", "points": [
    ...     {"label": f"m{i}", "latency_ms": 7.0 + i / 100, "map": 30.0} for i in range(3)]}],
    ...     reference=[])
    >>> boxes = [t.get_window_extent() for t in fig.axes[0].texts if t.get_gid() == LABEL_GID]
    >>> any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    False
    """
    renderer = fig.canvas.get_renderer()
    pt_per_px = 72.0 / fig.dpi
    placed: list[Any] = []
    for ann in sorted(labels, key=lambda a: a.axes.transData.transform(a.xy)[0]):
        dx, dy = ann.xyann
        sideways = round(ann.get_rotation()) % 180 == 90
        box = ann.get_window_extent(renderer)
        step = ((box.width if sideways else box.height) + 2) * pt_per_px
        for k in range(max_steps):
            shift = (k + 1) // 2 * step * (1 if k % 2 else -1)
            ann.xyann = (dx + shift, dy) if sideways else (dx, dy + shift)
            box = ann.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(box)
        if ann.xyann != (dx, dy):
            ann.axes.annotate(
                "",
                ann.xy,
                xytext=ann.xyann,
                textcoords="offset points",
                arrowprops={"arrowstyle": "-", "lw": 0.4, "color": ann.get_color(), "alpha": 0.6},
            )


def series_from_rows(rows: Sequence[ReportRow], device: str | None = None) -> list[dict[str, Any]]:
    """Group report rows (see :func:`picozoo.bench.rows.report_rows`) into plot series, one per
    (device or fleet machine, engine, precision, threads); points are labelled like upstream's
    (``PicoDet-S 416``: name and input size; files: their name) and carry the measured mAP
    (``measured``: True) when eval scored the benched file, else the claimed one; a measured
    mAP not of all of COCO val2017 names its ``set``; unstable and oversubscribed cells carry
    their ``marks``.

    >>> series_from_rows([ReportRow(plot_label="m", engine="paddle", threads=4, median_ms=9.0,
    ...                             map=30.0, map_measured=29.5, eval_coco_val2017=True)],
    ...                  device="laptop")  # doctest: +NORMALIZE_WHITESPACE
    [{'name': 'laptop: paddle, 4 thr', 'engine': 'paddle',
      'points': [{'label': 'm', 'latency_ms': 9.0, 'map': 29.5, 'measured': True}]}]
    """
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.median_ms is None:
            continue
        combo = f"{r.engine_label}, {r.threads} thr"
        where = r.machine or device  # a fleet machine's cells are its own series
        name = f"{where}: {combo}" if where else combo
        measured = r.map_measured
        group = groups.setdefault(name, {"name": name, "engine": r.engine, "points": []})
        marks = [UNSTABLE_MARK] if r.stable is False else []
        marks += [OVERSUBSCRIBED_MARK] if r.oversubscribed else []
        point = {
            "label": r.plot_label,
            "latency_ms": r.median_ms,
            "map": measured if measured is not None else r.map,
            "measured": measured is not None,
        }
        if measured is not None and not r.eval_coco_val2017:
            point["set"] = r.eval_set_short or "another data set"
        if marks:
            point["marks"] = " ".join(marks)
        group["points"].append(point)
    return list(groups.values())


def write_png(data: bytes, path: Path) -> Path:
    """Write PNG bytes with :func:`picozoo.atomic.write_output` (a file atomically, a device or
    FIFO in place).

    >>> write_png(plot_bytes, Path("plot.png"))  # doctest: +SKIP
    PosixPath('plot.png')
    """
    from ..atomic import write_output

    return write_output(Path(path), data)
