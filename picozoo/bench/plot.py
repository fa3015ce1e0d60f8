"""mAP-vs-latency plots like upstream's ``picodet_map.png`` (matplotlib, headless).

Measured cells with a known mAP are drawn as one curve per (device, engine, threads), beside
upstream's claimed CPU curve (i7-10750H, Paddle Inference, 12 threads). Cells without an mAP
(plain ONNX files) are drawn as labelled vertical lines at their measured latency.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import require


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


def map_vs_latency_png(
    series: Sequence[dict[str, Any]],
    *,
    title: str = "mAP vs latency",
    reference: Sequence[dict[str, Any]] | None = None,
) -> bytes:
    """PNG bytes of the plot.

    ``series``: ``[{"name": str, "points": [{"label", "latency_ms", "map"|None}, ...]}]``.

    >>> map_vs_latency_png([{"name": "laptop", "points": [
    ...     {"label": "PicoDet-S", "latency_ms": 7.1, "map": 32.5}]}])[:4]  # doctest: +SKIP
    b'\\x89PNG'
    """
    matplotlib = require("matplotlib", "bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    try:
        ref = list(reference if reference is not None else upstream_reference())
        if ref:
            ax.plot(
                [r["latency_ms"] for r in ref],
                [r["map"] for r in ref],
                "o",
                color="0.6",
                label="upstream claim (i7-10750H, Paddle Inference, 12 threads)",
            )
            for r in ref:
                ax.annotate(
                    r["label"],
                    (r["latency_ms"], r["map"]),
                    fontsize=6,
                    color="0.4",
                    xytext=(3, -8),
                    textcoords="offset points",
                )
        unmapped: list[tuple[str, float]] = []
        for s in series:
            pts = sorted(
                (p for p in s["points"] if p.get("latency_ms") is not None),
                key=lambda p: p["latency_ms"],
            )
            with_map = [p for p in pts if p.get("map") is not None]
            if with_map:
                ax.plot(
                    [p["latency_ms"] for p in with_map],
                    [p["map"] for p in with_map],
                    "s",
                    label=s["name"],
                )
                for p in with_map:
                    ax.annotate(
                        p["label"],
                        (p["latency_ms"], p["map"]),
                        fontsize=7,
                        xytext=(4, 4),
                        textcoords="offset points",
                    )
            unmapped += [
                (f"{p['label']} ({s['name']})", p["latency_ms"])
                for p in pts
                if p.get("map") is None
            ]
        xs = [float(r["latency_ms"]) for r in ref] + [
            float(p["latency_ms"])
            for s_ in series
            for p in s_["points"]
            if p.get("latency_ms") is not None
        ]
        if xs:
            ax.set_xlim(0, max(xs) * 1.12)
        if ref or any(p.get("map") is not None for s_ in series for p in s_["points"]):
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo - 1.0, hi + 1.0)
        else:
            ax.set_ylim(20.0, 45.0)
        ymin = ax.get_ylim()[0]
        for i, (label, lat) in enumerate(unmapped):
            line = ax.axvline(lat, linestyle=":", color=f"C{(i + 3) % 10}")
            ax.text(
                lat,
                ymin + 0.3,
                f" {label}: {lat:.1f} ms (no mAP) ",
                rotation=90,
                va="bottom",
                ha="right",
                fontsize=7,
                color=line.get_color(),
            )
        ax.set_xlabel("Latency (ms, median)")
        ax.set_ylabel("mAP val 0.5:0.95 (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def series_from_rows(
    rows: Sequence[dict[str, Any]], device: str | None = None
) -> list[dict[str, Any]]:
    """Group flat report rows (see :func:`picozoo.bench.report.flat_rows`) into plot series.

    >>> series_from_rows([{"model": "m", "engine": "paddle", "threads": 4, "median_ms": 9.0,
    ...                    "map": None}], device="laptop")
    [{'name': 'laptop: paddle, 4 thr', 'points': [{'label': 'm', 'latency_ms': 9.0, 'map': None}]}]
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["median_ms"] is None:
            continue
        combo = f"{r['engine']}, {r['threads']} thr"
        name = f"{device}: {combo}" if device else combo
        groups.setdefault(name, []).append(
            {"label": r["model"], "latency_ms": r["median_ms"], "map": r["map"]}
        )
    return [{"name": k, "points": v} for k, v in groups.items()]


def write_png(data: bytes, path: Path) -> Path:
    """Write PNG bytes atomically (temp file + rename).

    >>> write_png(plot_bytes, Path("plot.png"))  # doctest: +SKIP
    PosixPath('plot.png')
    """
    from ..atomic import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, data)
    return path
