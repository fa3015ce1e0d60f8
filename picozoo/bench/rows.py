"""One flat, typed row per benchmark cell: what the report, the cross-engine table, the merge and
the plot read (:func:`report_rows`).

A :class:`ReportRow` holds the cell's identity, its statistics, upstream's claims, the
params/FLOPs of the benched artifact, the measurement's facts, the failure and the mAP
``picozoo eval`` measured, each filled by one small function; its field names are the CSV
columns (:data:`picozoo.bench.report.CSV_COLUMNS`) and a few more for display.

>>> r = ReportRow(model="m", display="m", engine="paddle", threads=4, median_ms=9.0)
>>> r.ok, r.shown_name, r.engine_label
(True, 'm', 'paddle')
>>> ReportRow(display="m", postprocess=True, engine="mnn", precision="int8").shown_name
'm (w/ postprocess)'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..hub.registry import Claims
from .claimed import ratio_to_claim
from .notes import hash_scope, origin_of
from .records import Cell, Document

__all__ = ["STATS", "ReportRow", "report_rows", "row_of"]

#: The statistics of a measurement, as row fields.
STATS = ("median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "n", "fps")


@dataclass(frozen=True)
class ReportRow:
    """One cell of a benchmark, flat (see the module docstring)."""

    # identity
    device: str | None = None
    machine: str | None = None  #: the fleet machine (``dask worker --name``) that measured it
    model: str = ""
    model_id: str | None = None
    name: str | None = None
    display: str = ""  #: the model's name, else its label
    plot_label: str = ""  #: ``PicoDet-S 416`` (name and input size), else the label
    input_size: str | None = None  #: ``416*416``
    postprocess: bool = False
    engine: str = ""
    threads: int = 1
    status: str = "ok"  #: ``ok`` or ``failed``
    # statistics (None for a failed cell)
    median_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    n: int | None = None
    fps: float | None = None
    # upstream's claims and the benched artifact's own figures
    claimed_cpu_ms: float | None = None
    ratio: float | None = None  #: measured / claimed (None when oversubscribed, or unlike)
    #: why there is no ratio: the claim's conditions that differ from the cell's
    ratio_note: str | None = None
    map: float | None = None
    map50: float | None = None
    params_m: float | None = None
    params_m_artifact: float | None = None
    flops_g: float | None = None
    flops_g_artifact: float | None = None
    # the measurement's facts
    load_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_n: int | None = None
    stable: bool | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    peak_rss_mb: float | None = None
    engine_version: str | None = None
    # the file and where it came from
    artifact_sha256: str | None = None
    artifact_sha256_of: str | None = None  #: what that is the sha256 of (file, folder)
    origin: str | None = None
    source: str | None = None
    precision: str = "fp32"
    oversubscribed: bool = False
    image: str | None = None  #: the image fed (``bench --image``); None: seeded data
    image_sha256: str | None = None
    # a failure
    error: str | None = None
    hint: str | None = None
    stage: str | None = None
    # the mAP ``picozoo eval`` measured on the benched file
    map_measured: float | None = None
    map50_measured: float | None = None
    map_delta: float | None = None
    eval_images: int | None = None
    eval_dataset: str | None = None  #: the data set's fingerprint
    eval_set: str | None = None  #: the data set: name, images, annotation sha256
    eval_set_short: str | None = None  #: the data set as a table cell names it
    eval_ann_sha256: str | None = None
    #: measured as upstream's claims were: all of COCO val2017, upstream's evaluation NMS
    eval_coco_val2017: bool | None = None
    #: mAPs are compared only between rows with the same key (annotation sha256, images, NMS)
    eval_set_key: tuple[str, int, str] | None = None

    @property
    def ok(self) -> bool:
        """Measured (status ``ok`` with a median)."""
        return self.status == "ok" and self.median_ms is not None

    @property
    def shown_name(self) -> str:
        """The model as tables name it: its display name, ``(w/ postprocess)`` when it ran
        with post-processing."""
        return self.display + (" (w/ postprocess)" if self.postprocess else "")

    @property
    def engine_label(self) -> str:
        """``openvino``, or ``openvino int8`` when not fp32."""
        return self.engine if self.precision == "fp32" else f"{self.engine} {self.precision}"

    def to_dict(self) -> dict[str, Any]:
        """Every field, by name (lists for the warnings and notes)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(warnings=list(self.warnings), notes=list(self.notes))
        return out


def report_rows(doc: Document) -> list[ReportRow]:
    """One row per cell of ``doc``, in order.

    >>> report_rows(doc)[0].median_ms, report_rows(doc)[0].claimed_cpu_ms  # doctest: +SKIP
    (25.3141355, 6.6)
    """
    return [row_of(doc, c) for c in doc.cells]


def row_of(doc: Document, c: Cell) -> ReportRow:
    """The row of cell ``c`` of ``doc``."""
    claims = c.claims or Claims()
    return ReportRow(
        **_identity(doc, c),
        **_statistics(c),
        **_claimed(c, claims),
        **_artifact(c),
        **_measurement(c),
        **_failure(c),
        **_measured_map(c, claims),
    )


def _identity(doc: Document, c: Cell) -> dict[str, Any]:
    """Which model, engine and file the cell ran, and how."""
    return {
        "device": doc.device,
        "machine": c.machine.name if c.machine is not None else None,
        "model": c.model,
        "model_id": c.model_id,
        "name": c.name,
        "display": c.name or c.model,
        "plot_label": f"{c.name} {c.input_size[0]}" if c.name and c.input_size else c.model,
        "input_size": "*".join(str(d) for d in c.input_size) if c.input_size else None,
        "postprocess": c.postprocess,
        "engine": c.engine,
        "threads": c.threads,
        "status": "ok" if c.ok else "failed",
        "artifact_sha256": c.artifact_sha256,
        "artifact_sha256_of": hash_scope(c) if c.artifact_sha256 else None,
        "oversubscribed": c.oversubscribed,
        "origin": origin_of(c),
        "source": c.source,
        "precision": c.precision_shown,
        "image": c.image.name if c.image else None,
        "image_sha256": c.image.sha256 if c.image else None,
    }


def _statistics(c: Cell) -> dict[str, Any]:
    stats = c.stats
    return {k: getattr(stats, k) for k in STATS} if stats else {}


def _claimed(c: Cell, claims: Claims) -> dict[str, Any]:
    """Upstream's claims, and the measured / claimed latency ratio (not for oversubscribed
    cells: those measure the oversubscription, not the model; nor for cells measured under
    other conditions than the claim, see :func:`picozoo.bench.claimed.ratio_to_claim`)."""
    ratio, why = ratio_to_claim(c)
    return {
        "claimed_cpu_ms": claims.latency_ms.get("cpu"),
        "ratio": ratio,
        "ratio_note": why,
        "map": claims.map,
        "map50": claims.map50,
        "params_m": claims.params_m,
        "flops_g": claims.flops_g,
    }


def _artifact(c: Cell) -> dict[str, Any]:
    info = c.modelinfo
    if info is None:
        return {}
    return {"params_m_artifact": info.params / 1e6, "flops_g_artifact": info.flops / 1e9}


def _measurement(c: Cell) -> dict[str, Any]:
    m = c.measured
    if m is None:
        return {}
    return {
        "load_ms": m.load_ms,
        "first_inference_ms": m.first_inference_ms,
        "warmup_n": m.warmup.n,
        "stable": m.stability.stable,
        "warnings": tuple(m.stability.warnings),
        "notes": tuple(m.notes),
        "peak_rss_mb": m.peak_rss_mb,
        "engine_version": m.engine_version,
    }


def _failure(c: Cell) -> dict[str, Any]:
    f = c.failure
    return {"error": f.error, "hint": f.hint, "stage": f.stage} if f else {}


def _measured_map(c: Cell, claims: Claims) -> dict[str, Any]:
    mm = c.measured_map
    if mm is None:
        return {}
    return {
        "map_measured": mm.map,
        "map50_measured": mm.map50,
        "map_delta": mm.delta(claims.map),
        "eval_images": mm.images,
        "eval_dataset": mm.dataset,
        "eval_set": mm.set_label,
        "eval_set_short": mm.set_short,
        "eval_ann_sha256": mm.ann_sha256,
        "eval_coco_val2017": mm.coco_val2017,
        "eval_set_key": mm.set_key,
    }
