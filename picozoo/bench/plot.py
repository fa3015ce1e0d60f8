"""mAP-vs-latency plots like upstream's ``picodet_map.png`` (matplotlib, headless).

Measured cells with a known mAP are drawn as one series per (device, engine, precision,
threads), beside upstream's claimed CPU curve (i7-10750H, Paddle Inference, 12 threads). Colours
are the engine's (:data:`ENGINE_COLORS`), so a cross-engine result reads at a glance. A point's
mAP is the one ``picozoo eval`` measured on the benched file when there is one (filled marker),
else upstream's claim for the model (hollow marker, "claimed mAP" in the legend). Cells without
any mAP (plain ONNX files) are drawn as labelled vertical lines at their measured latency.
Labels never overprint each other (:func:`place_labels`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import require
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
}
#: Markers of the successive series of one engine (precisions, thread counts, devices).
MARKERS = ("s", "o", "^", "D", "v", "P", "X", "*")


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
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
        _fill(fig, ax, series, title=title, reference=reference, declutter=declutter)
    return fig


def _fill(
    fig: Any,
    ax: Any,
    series: Sequence[dict[str, Any]],
    *,
    title: str,
    reference: Sequence[dict[str, Any]] | None,
    declutter: bool,
) -> None:
    """Draw the plot of :func:`map_vs_latency_figure` on ``ax`` (``fig`` closed on failure)."""
    import matplotlib.pyplot as plt

    try:
        labels = _draw(ax, series, list(upstream_reference() if reference is None else reference))
        ax.set_xlabel("Latency (ms, median)")
        ax.set_ylabel("mAP val 0.5:0.95 (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        if declutter:
            place_labels(fig, labels)
    except BaseException:
        plt.close(fig)
        raise


def _label(
    ax: Any, text: str, xy: tuple[float, float], offset: tuple[float, float], **kw: Any
) -> Any:
    return ax.annotate(text, xy, xytext=offset, textcoords="offset points", gid=LABEL_GID, **kw)


def _draw(ax: Any, series: Sequence[dict[str, Any]], ref: list[dict[str, Any]]) -> list[Any]:
    """Draw every point and line; return the label annotations."""
    labels = _draw_reference(ax, ref)
    unmapped: list[tuple[str, float]] = []
    for s, marker in zip(series, _markers(series), strict=True):
        pts = sorted(
            (p for p in s["points"] if p.get("latency_ms") is not None),
            key=lambda p: p["latency_ms"],
        )
        labels += _draw_series(ax, s, pts, marker)
        unmapped += [
            (f"{p['label']} ({s['name']})", p["latency_ms"]) for p in pts if p.get("map") is None
        ]
    _set_limits(ax, series, ref)
    return labels + _draw_unmapped(ax, unmapped)


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
        labels += [
            _label(ax, p["label"], (p["latency_ms"], p["map"]), (4, 4), fontsize=7, color=color)
            for p in group
        ]
    return labels


def _set_limits(ax: Any, series: Sequence[dict[str, Any]], ref: list[dict[str, Any]]) -> None:
    """x from 0 past the slowest point; y around the points (20-45 without any mAP)."""
    points = [p for s in series for p in s["points"]]
    xs = [float(r["latency_ms"]) for r in ref]
    xs += [float(p["latency_ms"]) for p in points if p.get("latency_ms") is not None]
    if xs:
        ax.set_xlim(0, max(xs) * 1.12)
    if ref or any(p.get("map") is not None for p in points):
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo - 1.0, hi + 1.0)
    else:
        ax.set_ylim(20.0, 45.0)


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
    (device, engine, precision, threads); points are labelled like upstream's (``PicoDet-S
    416``: name and input size; files: their name) and carry the measured mAP (``measured``:
    True) when eval scored the benched file, else the claimed one.

    >>> series_from_rows([ReportRow(plot_label="m", engine="paddle", threads=4, median_ms=9.0,
    ...                             map=30.0, map_measured=29.5)],
    ...                  device="laptop")  # doctest: +NORMALIZE_WHITESPACE
    [{'name': 'laptop: paddle, 4 thr', 'engine': 'paddle',
      'points': [{'label': 'm', 'latency_ms': 9.0, 'map': 29.5, 'measured': True}]}]
    """
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.median_ms is None:
            continue
        combo = f"{r.engine_label}, {r.threads} thr"
        name = f"{device}: {combo}" if device else combo
        measured = r.map_measured
        group = groups.setdefault(name, {"name": name, "engine": r.engine, "points": []})
        group["points"].append(
            {
                "label": r.plot_label,
                "latency_ms": r.median_ms,
                "map": measured if measured is not None else r.map,
                "measured": measured is not None,
            }
        )
    return list(groups.values())


def write_png(data: bytes, path: Path) -> Path:
    """Write PNG bytes with :func:`picozoo.atomic.write_output` (a file atomically, a device or
    FIFO in place).

    >>> write_png(plot_bytes, Path("plot.png"))  # doctest: +SKIP
    PosixPath('plot.png')
    """
    from ..atomic import write_output

    return write_output(Path(path), data)
