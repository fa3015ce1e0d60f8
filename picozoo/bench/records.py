"""The typed records of a benchmark, and the ``picozoo.bench/1`` JSON they read and write.

- :class:`BenchSpec`: what one worker process is asked to measure;
- :class:`Measurement` (with :class:`Warmup`, :class:`Stats`, :class:`Stability`) or
  :class:`Failure`: what it reports;
- :class:`Cell`: one (model, engine, precision, threads) of a result, with the
  :class:`MeasuredMap` of the benched file when ``picozoo eval`` scored it;
  :class:`Document`: a whole result with its :class:`Environment` and :class:`RunSettings`.

A document keeps every raw sample (integer nanoseconds) so results can be re-analysed later.
:meth:`Document.from_json` is the validation of a saved file: it raises
:class:`~picozoo.errors.ResultFileError` naming the file and the first bad field.

>>> Document.from_json({"schema": "picozoo.bench/0"}, "old.json")
Traceback (most recent call last):
...
picozoo.errors.ResultFileError: old.json is not a valid picozoo.bench/1 result: $.schema: \
expected 'picozoo.bench/1', got 'picozoo.bench/0' (pass a file written by `picozoo bench \
--format json`)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ResultFileError
from ..hub.eval_result import is_coco_val2017, set_label
from ..hub.registry import CLAIM_FIELDS, Claims, Conditions
from ..runtime.base import ENGINES, PRECISIONS, TensorInfo
from .fields import FieldError, Fields, plain

SCHEMA = "picozoo.bench/1"
#: every precision some engine runs, in a fixed order
ALL_PRECISIONS = tuple(dict.fromkeys(p for ps in PRECISIONS.values() for p in ps))
RESULT_HINT = "pass a file written by `picozoo bench --format json`"


def _warmup(f: Fields) -> int | str:
    value: int | str = f.get("warmup", "string", "integer")
    if value != "auto" and not (isinstance(value, int) and value >= 0):
        raise f.error(f"{value!r} is neither 'auto' nor a count >= 0", "warmup")
    return value


def _size(f: Fields) -> tuple[int, int] | None:
    size = f.items("input_size", "integer", optional=True, minimum=1)
    if size is not None and len(size) != 2:
        raise f.error(f"expected [height, width], got {list(size)}", "input_size")
    return (int(size[0]), int(size[1])) if size else None


@dataclass(frozen=True)
class BenchSpec:
    """What the worker measures: one model file on one engine, at one precision, with one
    thread count."""

    path: Path
    engine: str
    threads: int = 1
    warmup: int | str = "auto"  #: a count, or "auto": until stable (see stats.warm)
    min_iters: int = 100
    min_time_s: float = 2.0
    input_size: tuple[int, int] | None = None  #: for inputs with a dynamic height/width
    seed: int = 0
    precision: str = "fp32"  #: one of the engine's ``picozoo.runtime.base.PRECISIONS``
    #: arrays fed by input name (an ``.npz`` that ``bench --image`` wrote: a real image
    #: pre-processed as ``infer`` does); inputs it lacks get seeded data. None: all seeded.
    feeds: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_unset(dict(plain(self)), ("feeds",))

    @classmethod
    def from_json(cls, data: Any) -> BenchSpec:
        """The spec in parsed JSON; raises :class:`FieldError`.

        >>> spec = BenchSpec(Path("m.onnx"), "onnxruntime", threads=2)
        >>> BenchSpec.from_json(spec.to_dict()) == spec
        True
        """
        f = Fields(data)
        return cls(
            path=Path(f.string("path")),
            engine=f.string("engine"),
            threads=f.integer("threads", minimum=1),
            warmup=_warmup(f),
            min_iters=f.integer("min_iters", minimum=1),
            min_time_s=f.number("min_time_s", minimum=0),
            input_size=_size(f),
            seed=f.opt_integer("seed") or 0,
            precision=f.opt_string("precision") or "fp32",
            feeds=Path(feeds) if (feeds := f.opt_string("feeds")) else None,
        )


@dataclass(frozen=True)
class FedImage:
    """The image a cell was fed (``bench --image``) instead of seeded data: its file name,
    sha256 and size (height, width) before pre-processing.

    >>> FedImage("bus.jpg", "ab" * 32, (1080, 810)).to_dict()["size"]
    [1080, 810]
    """

    name: str
    sha256: str
    size: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self))

    @classmethod
    def from_fields(cls, f: Fields) -> FedImage:
        size = f.items("size", "integer", minimum=1) or ()
        if len(size) != 2:
            raise f.error(f"expected [height, width], got {list(size)}", "size")
        return cls(f.string("name"), f.string("sha256"), (int(size[0]), int(size[1])))


@dataclass(frozen=True)
class Warmup:
    """The warm-up iterations: how many, whether they settled, their times (ns)."""

    n: int
    stable: bool
    samples_ns: tuple[int, ...]

    @classmethod
    def from_fields(cls, f: Fields) -> Warmup:
        return cls(f.integer("n", minimum=0), f.boolean("stable"), f.integers("samples_ns"))


@dataclass(frozen=True)
class Stats:
    """Summary of the measured iterations (see :func:`picozoo.bench.stats.summarize`)."""

    n: int
    median_ms: float
    mean_ms: float
    std_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    fps: float | None

    @classmethod
    def from_fields(cls, f: Fields) -> Stats:
        ms = {k.name: f.number(k.name, minimum=0) for k in dataclasses.fields(cls)[1:-1]}
        return cls(n=f.integer("n", minimum=1), fps=f.opt_number("fps"), **ms)


@dataclass(frozen=True)
class Stability:
    """The stability check (see :func:`picozoo.bench.stats.stability`)."""

    stable: bool
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_fields(cls, f: Fields) -> Stability:
        return cls(f.boolean("stable"), f.strings("warnings"))


@dataclass(frozen=True)
class Measurement:
    """What the worker measured in one cell (``wall_s`` is added by the runner)."""

    engine_version: str
    engine_settings: Mapping[str, Any]
    inputs: tuple[TensorInfo, ...]  #: what was fed (concrete shapes)
    notes: tuple[str, ...]
    load_ms: float
    first_inference_ms: float
    warmup: Warmup
    samples_ns: tuple[int, ...]
    stats: Stats
    stability: Stability
    peak_rss_mb: float  #: the worker's own peak RSS (VmHWM), model and engine loaded
    wall_s: float | None = None  #: the whole worker process, as the runner saw it
    rss_before_load_mb: float | None = None  #: the worker's RSS before the model was loaded
    #: the precision the engine computed in, read back after loading (None: a result written
    #: before it was recorded; see :attr:`Cell.executed_precision`)
    executed_precision: str | None = None

    def image_size(self) -> tuple[int, int] | None:
        """Height and width of the first 4-D (image) input that was fed.

        >>> doc.cells[0].measured.image_size()  # doctest: +SKIP
        (416, 416)
        """
        shape = next((i.shape for i in self.inputs if len(i.shape) == 4), None)
        return (int(shape[2]), int(shape[3])) if shape else None

    def to_dict(self) -> dict[str, Any]:
        return _drop_unset(plain(self), ("wall_s", "rss_before_load_mb", "executed_precision"))

    @classmethod
    def from_fields(cls, f: Fields) -> Measurement:
        samples = f.integers("samples_ns", minimum=0, min_items=1)
        stats = Stats.from_fields(f.obj("stats"))
        if stats.n != len(samples):
            raise f.error(f"stats.n ({stats.n}) does not match the {len(samples)} samples")
        inputs = tuple(
            TensorInfo(i.string("name"), list(i.integers("shape")), i.string("dtype"))
            for i in f.objects("inputs")
        )
        return cls(
            engine_version=f.opt_string("engine_version") or "",
            engine_settings=dict(f.obj("engine_settings").data),
            inputs=inputs,
            notes=f.strings("notes"),
            load_ms=f.number("load_ms", minimum=0),
            first_inference_ms=f.number("first_inference_ms", minimum=0),
            warmup=Warmup.from_fields(f.obj("warmup")),
            samples_ns=samples,
            stats=stats,
            stability=Stability.from_fields(f.obj("stability")),
            peak_rss_mb=f.number("peak_rss_mb", minimum=0),
            wall_s=f.opt_number("wall_s"),
            rss_before_load_mb=f.opt_number("rss_before_load_mb"),
            executed_precision=f.opt_string("executed_precision"),
        )


#: the stage of a cell that was not measured because this CPU cannot run its precision
SKIPPED = "skipped"


@dataclass(frozen=True)
class Failure:
    """Why a cell has no measurement: the stage that failed, the error, a hint. Stage
    ``skipped``: not measured on purpose (the engine would compute in another precision)."""

    stage: str | None
    error: str
    hint: str | None = None

    @property
    def skipped(self) -> bool:
        return self.stage == SKIPPED

    def to_dict(self) -> dict[str, Any]:
        return dict(plain(self))

    @classmethod
    def from_fields(cls, f: Fields) -> Failure:
        error = f.opt_string("error")
        if not error:
            raise f.error("a failed cell needs an 'error'")
        return cls(f.opt_string("stage"), error, f.opt_string("hint"))


#: What a worker reports for one cell.
CellResult = Measurement | Failure


def result_to_json(result: CellResult) -> dict[str, Any]:
    """The worker's JSON line: ``{"ok": true, ...measurement}`` or ``{"ok": false, ...}``.

    >>> result_to_json(Failure("load", "boom", "check the file"))
    {'ok': False, 'stage': 'load', 'error': 'boom', 'hint': 'check the file'}
    """
    return {"ok": isinstance(result, Measurement), **result.to_dict()}


def result_from_json(data: Any) -> CellResult:
    """The inverse of :func:`result_to_json`; raises :class:`FieldError`.

    >>> result_from_json({"ok": False, "stage": "timeout", "error": "no result after 9 s"})
    Failure(stage='timeout', error='no result after 9 s', hint=None)
    """
    f = Fields(data)
    return Measurement.from_fields(f) if f.boolean("ok") else Failure.from_fields(f)


@dataclass(frozen=True)
class ArtifactInfo:
    """Parameters and FLOPs computed from the benchmarked file (see picozoo.modelinfo)."""

    params: int
    flops: int


@dataclass(frozen=True)
class MeasuredMap:
    """The COCO mAP ``picozoo eval`` measured on the benched file itself (its sha256, engine and
    precision are the cell's): fractions 0..1, as ``eval`` reports them, and the data set it
    was measured on (name, annotation sha256, images: :attr:`set_label`). Only an mAP of all of
    COCO val2017 is compared with upstream's claim (:meth:`delta`); two mAPs are compared only
    when :attr:`set_key` is the same.

    >>> m = MeasuredMap(ap=0.3191, ap50=0.47, images=5000, dataset="d" * 16,
    ...                 dataset_name="COCO val2017", dataset_images=5000)
    >>> round(m.map, 2), round(m.delta(32.5), 2), m.set_label
    (31.91, -0.59, 'COCO val2017 (5000 images)')
    >>> dataclasses.replace(m, images=500).delta(32.5) is None
    True
    """

    ap: float  #: AP at IoU 0.5:0.95
    ap50: float | None
    images: int  #: the images evaluated
    dataset: str  #: fingerprint of the data set (annotation file and images)
    ann_file: str | None = None
    ann_sha256: str | None = None  #: sha256 of the annotation file (None: an older result)
    dataset_name: str | None = None  #: ``COCO val2017``, or the annotation file's name
    dataset_images: int | None = None  #: the images the annotation file lists
    #: the NMS the eval decoded with when it was not upstream's evaluation settings (``eval
    #: --nms deploy``, ``--iou``, ``--conf``: the eval result's ``nms`` record); None: those
    #: settings, as every upstream mAP was measured
    nms: dict[str, Any] | None = None

    @property
    def nms_label(self) -> str | None:
        """The NMS in a few words when it was not upstream's evaluation settings (None).

        >>> MeasuredMap(0.5, None, 4, "f", nms={"mode": "deploy", "score_threshold": 0.4,
        ...             "nms_threshold": 0.5}).nms_label
        'NMS deploy (score > 0.4, IoU 0.5)'
        >>> MeasuredMap(0.5, None, 4, "f", nms={"score_threshold": 0.3,
        ...             "nms_threshold": 0.6}).nms_label
        'NMS score > 0.3, IoU 0.6'
        """
        if self.nms is None:
            return None
        settings = f"score > {self.nms.get('score_threshold')}, IoU {self.nms.get('nms_threshold')}"
        if self.nms.get("mode") == "deploy":
            return f"NMS deploy ({settings})"
        return f"NMS {settings}"

    @property
    def map(self) -> float:
        """AP 0.5:0.95 in percent, as upstream's tables give mAP."""
        return self.ap * 100.0

    @property
    def map50(self) -> float | None:
        return None if self.ap50 is None else self.ap50 * 100.0

    @property
    def coco_val2017(self) -> bool:
        """Measured as upstream's claims were: on all of COCO val2017, with upstream's
        evaluation NMS."""
        return is_coco_val2017(self.dataset_name, self.images) and self.nms is None

    @property
    def set_key(self) -> tuple[str, int, str]:
        """What makes two mAPs comparable: the same annotation file (its sha256), the same
        images evaluated (the data set fingerprint for results that do not say) and the same
        NMS."""
        return (self.ann_sha256 or self.dataset, self.images, self.nms_label or "")

    @property
    def set_label(self) -> str:
        """The data set, as reports name it (see :func:`~picozoo.hub.eval_result.set_label`),
        and the NMS when it was not upstream's evaluation settings."""
        label = set_label(self.dataset_name, self.images, self.dataset_images, self.ann_sha256,
                          self.dataset, self.ann_file)  # fmt: skip
        return label + (f", {self.nms_label}" if self.nms_label else "")

    @property
    def set_short(self) -> str:
        """The data set in a table cell: its name and images (the sha256 is in the notes).

        >>> MeasuredMap(0.9, None, 4, "f", dataset_name="ann.json", ann_sha256="ab").set_short
        'ann.json, 4 images'
        """
        nms = f", {self.nms_label}" if self.nms_label else ""
        if self.dataset_name is None:  # an older result: its file's name, or its fingerprint
            name = (self.ann_file or "").replace("\\", "/").rsplit("/", 1)[-1]
            return f"{name or 'data set ' + self.dataset[:12]}, {self.images} images{nms}"
        if self.dataset_images is not None and self.images < self.dataset_images:
            count = f"first {self.images} of {self.dataset_images} images"
        else:
            count = f"{self.images} images"
        return f"{self.dataset_name}, {count}{nms}"

    def delta(self, claimed: float | None) -> float | None:
        """Measured minus claimed mAP, in points: None without a claim, or when it was not
        measured as the claims were (all of COCO val2017, upstream's evaluation NMS)."""
        return None if claimed is None or not self.coco_val2017 else self.map - claimed

    def to_dict(self) -> dict[str, Any]:
        return _drop_unset(
            dict(plain(self)), ("ann_file", "ann_sha256", "dataset_name", "dataset_images", "nms")
        )

    @classmethod
    def from_fields(cls, f: Fields) -> MeasuredMap:
        return cls(
            ap=f.number("ap", minimum=0),
            ap50=f.get("ap50", "number", optional=True, minimum=0),
            images=f.integer("images", minimum=0),
            dataset=f.string("dataset"),
            ann_file=f.opt_string("ann_file"),
            ann_sha256=f.opt_string("ann_sha256"),
            dataset_name=f.opt_string("dataset_name"),
            dataset_images=f.get("dataset_images", "integer", optional=True, minimum=0),
            nms=f.get("nms", "object", optional=True),
        )


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One (model, engine, precision, threads) of a result: what was benched, and its
    measurement or failure. Fields are in the order of the JSON."""

    model: str  #: label: the model id, or the file/folder name
    model_id: str | None = None
    name: str | None = None
    family: str | None = None
    source: str | None = None  #: the file that was loaded
    origin: str | None = None  #: where it came from: ``upstream``, ``converted`` or ``file``
    postprocess: bool = False
    engine: str
    #: what the engine computed in (None: a result written before precisions were recorded,
    #: which ran fp32; see :attr:`run_precision`)
    precision: str | None = None
    threads: int
    input_size: tuple[int, ...] | None = None  #: what was fed (HxW)
    claims: Claims | None = None
    artifact_sha256: str | None = None
    modelinfo: ArtifactInfo | None = None
    #: mAP that ``picozoo eval`` measured on this very file, engine and precision
    measured_map: MeasuredMap | None = None
    result: CellResult
    provenance: Mapping[str, Any] | None = None
    #: more threads than the cores the benchmark process could use (affinity / cgroup quota)
    oversubscribed: bool = False
    #: the real image fed (``bench --image``); None: seeded random inputs
    image: FedImage | None = None
    #: the fleet machine that measured it (``bench --cluster``); None: this document's machine
    machine: Machine | None = None

    @property
    def ok(self) -> bool:
        return isinstance(self.result, Measurement)

    @property
    def measured(self) -> Measurement | None:
        return self.result if isinstance(self.result, Measurement) else None

    @property
    def failure(self) -> Failure | None:
        return self.result if isinstance(self.result, Failure) else None

    @property
    def stats(self) -> Stats | None:
        return self.measured.stats if self.measured else None

    @property
    def run_precision(self) -> str:
        """The precision the cell ran at (``fp32`` for results that do not say).

        >>> Cell(model="m", engine="mnn", threads=1, result=Failure(None, "x")).run_precision
        'fp32'
        """
        return self.precision or "fp32"

    @property
    def executed_precision(self) -> str | None:
        """The precision the engine computed in (None for a cell that did not run): what the
        worker read back, else (results written before it was recorded) OpenVINO's
        ``INFERENCE_PRECISION_HINT`` in the engine settings, else :attr:`run_precision`.

        >>> m = Measurement("1", {"INFERENCE_PRECISION_HINT": "<Type: 'float32'>"}, (), (), 1.0,
        ...                 1.0, Warmup(0, True, ()), (1,), Stats(1, *[1.0] * 7, None),
        ...                 Stability(True), 1.0)
        >>> Cell(model="m", engine="openvino", precision="bf16", threads=1,
        ...      result=m).executed_precision
        'fp32'
        """
        m = self.measured
        if m is None:
            return None
        if m.executed_precision:
            return m.executed_precision
        hint = m.engine_settings.get("INFERENCE_PRECISION_HINT")
        if self.engine == "openvino" and hint is not None:
            from ..runtime.openvino import executed

            return executed(hint)
        return self.run_precision

    @property
    def precision_shown(self) -> str:
        """The precision column: what ran; ``fp32 (bf16 asked)`` for a cell (of a result
        written before cells were skipped) whose engine ran another precision than asked.

        >>> Cell(model="m", engine="mnn", precision="int8", threads=1,
        ...      result=Failure(None, "x")).precision_shown
        'int8'
        """
        ran = self.executed_precision or self.run_precision
        return ran if ran == self.run_precision else f"{ran} ({self.run_precision} asked)"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = _drop_unset(
            plain(self, omit=("result", "provenance", "measured_map")),
            ("origin", "oversubscribed", "precision", "image", "machine"),
        )
        if self.machine is not None:
            d["machine"] = self.machine.to_dict()
        if self.claims is not None:  # conditions as the registry has them (none: not written)
            d["claims"] = self.claims.to_dict()
        if self.measured_map is not None:  # after modelinfo, as in the dataclass
            d = _insert_after(d, "modelinfo", "measured_map", self.measured_map.to_dict())
        d["status"] = "ok" if self.ok else "failed"
        d.update(self.result.to_dict())
        if self.provenance is not None:
            d["provenance"] = plain(self.provenance)
        return d

    @classmethod
    def from_fields(cls, f: Fields) -> Cell:
        ok = f.string("status", choices=("ok", "failed")) == "ok"
        claims, info = f.opt_obj("claims"), f.opt_obj("modelinfo")
        size = f.items("input_size", "integer", optional=True)
        provenance = f.opt_obj("provenance")
        return cls(
            model=f.string("model"),
            model_id=f.opt_string("model_id"),
            name=f.opt_string("name"),
            family=f.opt_string("family"),
            source=f.opt_string("source"),
            origin=f.opt_string("origin"),
            postprocess=f.boolean("postprocess"),
            engine=f.string("engine", choices=tuple(ENGINES)),
            precision=_precision(f),
            threads=f.integer("threads", minimum=1),
            input_size=size,
            claims=_claims(claims) if claims else None,
            artifact_sha256=f.opt_string("artifact_sha256"),
            modelinfo=ArtifactInfo(info.integer("params"), info.integer("flops")) if info else None,
            measured_map=MeasuredMap.from_fields(mm) if (mm := f.opt_obj("measured_map")) else None,
            result=Measurement.from_fields(f) if ok else Failure.from_fields(f),
            provenance=dict(provenance.data) if provenance else None,
            oversubscribed=bool(f.get("oversubscribed", "boolean", optional=True)),
            image=FedImage.from_fields(im) if (im := f.opt_obj("image")) else None,
            machine=Machine.from_fields(mf) if (mf := f.opt_obj("machine")) else None,
        )


def _precision(f: Fields) -> str | None:
    value = f.opt_string("precision")
    if value is not None and value not in ALL_PRECISIONS:
        raise f.error(f"{value!r} is not one of: {', '.join(ALL_PRECISIONS)}", "precision")
    return value


def _insert_after(d: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    """``d`` with ``key: value`` placed right after ``after`` (at the end if it is absent)."""
    if after not in d:
        return {**d, key: value}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out


def _claims(f: Fields) -> Claims:
    latency, conditions = f.opt_obj("latency_ms"), f.opt_obj("conditions")
    return Claims(
        **{k: f.opt_number(k) for k in CLAIM_FIELDS},
        latency_ms={k: latency.number(k) for k in latency.data} if latency else {},
        conditions={k: _conditions(conditions.obj(k)) for k in conditions.data}
        if conditions
        else {},
    )


def _conditions(f: Fields) -> Conditions:
    """A latency claim's conditions (results written before claims carried them have none)."""
    return Conditions(
        engine=f.opt_string("engine"),
        threads=f.opt_integer("threads"),
        precision=f.opt_string("precision"),
        postprocess=f.get("postprocess", "boolean", optional=True),
    )


@dataclass(frozen=True)
class Environment:
    """What a benchmark ran on (see :func:`picozoo.bench.environment.collect_environment`)."""

    cpu_model: str
    physical_cores: int | None
    logical_cores: int
    hostname: str | None
    os: str | None
    machine: str | None
    python_executable: str | None
    versions: Mapping[str, str | None]  #: distribution -> version (None: not installed)
    cpu_governor: str | None
    usable_cores: int | None = None  #: cores this process could use (affinity, cgroup quota)

    @property
    def cores(self) -> int:
        """Cores the benchmark could use (``logical_cores`` for results that do not say).

        >>> env = Environment("CPU", 2, 4, None, None, None, None, {}, None)
        >>> env.cores, dataclasses.replace(env, usable_cores=2).cores
        (4, 2)
        """
        return self.usable_cores or self.logical_cores

    @classmethod
    def from_fields(cls, f: Fields) -> Environment:
        versions = f.obj("versions")
        return cls(
            cpu_model=f.string("cpu_model"),
            physical_cores=f.opt_integer("physical_cores"),
            logical_cores=f.integer("logical_cores", minimum=1),
            hostname=f.opt_string("hostname"),
            os=f.opt_string("os"),
            machine=f.opt_string("machine"),
            python_executable=f.opt_string("python_executable"),
            versions={k: versions.opt_string(k) for k in versions.data},
            cpu_governor=f.opt_string("cpu_governor"),
            usable_cores=f.get("usable_cores", "integer", optional=True, minimum=1),
        )


@dataclass(frozen=True)
class Machine:
    """A fleet machine (``bench --cluster``): the Dask worker's ``--name`` and what it ran on.

    >>> env = Environment("CPU", 2, 4, None, None, None, None, {}, None)
    >>> Machine("board-a", env).to_dict()["name"]
    'board-a'
    """

    name: str
    environment: Environment

    def to_dict(self) -> dict[str, Any]:
        d = plain(self)
        d["environment"] = _drop_unset(d["environment"], ("usable_cores",))
        return dict(d)

    @classmethod
    def from_fields(cls, f: Fields) -> Machine:
        return cls(name=f.string("name"), environment=Environment.from_fields(f.obj("environment")))


@dataclass(frozen=True)
class RunSettings:
    """How a whole benchmark was run (the same for every cell)."""

    warmup: int | str
    min_iters: int
    min_time_s: float
    threads: tuple[int, ...] = ()
    timeout_s: float | None = None
    seed: int = 0
    percentiles: str = ""

    @classmethod
    def from_fields(cls, f: Fields) -> RunSettings:
        return cls(
            warmup=_warmup(f),
            min_iters=f.integer("min_iters", minimum=1),
            min_time_s=f.number("min_time_s", minimum=0),
            threads=f.integers("threads", minimum=1) if "threads" in f.data else (),
            timeout_s=f.opt_number("timeout_s"),
            seed=f.opt_integer("seed") or 0,
            percentiles=f.opt_string("percentiles") or "",
        )


@dataclass(frozen=True)
class Document:
    """A whole ``picozoo.bench/1`` result."""

    created: str  #: ISO 8601, UTC, seconds
    device: str  #: the label used in reports and merges
    environment: Environment
    settings: RunSettings
    cells: tuple[Cell, ...] = field(default=())
    #: what the run said about the whole benchmark (engines skipped by ``--engine all``...)
    notes: tuple[str, ...] = ()

    schema: ClassVar[str] = SCHEMA

    @classmethod
    def create(
        cls,
        cells: Sequence[Cell],
        environment: Environment,
        settings: RunSettings,
        device: str,
        notes: Sequence[str] = (),
    ) -> Document:
        """A new document, created now.

        >>> from picozoo.bench.environment import collect_environment
        >>> doc = Document.create([], collect_environment(), RunSettings("auto", 100, 2.0), "pc")
        >>> doc.device, doc.created.endswith("+00:00")
        ('pc', True)
        """
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return cls(now, device, environment, settings, tuple(cells), tuple(notes))

    @property
    def all_failed(self) -> bool:
        """True when the document has cells and none of them succeeded.

        >>> load_document(Path("every-cell-failed.json")).all_failed  # doctest: +SKIP
        True
        """
        return bool(self.cells) and not any(c.ok for c in self.cells)

    def to_dict(self) -> dict[str, Any]:
        cells = [c.to_dict() for c in self.cells]
        d = plain(self, omit=("cells", "notes"))
        d["environment"] = _drop_unset(d["environment"], ("usable_cores",))
        if self.notes:
            d["notes"] = list(self.notes)
        return {"schema": self.schema, **d, "cells": cells}

    def to_json(self) -> str:
        """The document as indented JSON text (what ``--format json`` writes).

        >>> load_document(path).to_json() == path.read_text()  # doctest: +SKIP
        True
        """
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls, data: Any, path: str | Path = "<result>") -> Document:
        """The document in parsed JSON ``data`` read from ``path``: this is the validation.

        Raises :class:`~picozoo.errors.ResultFileError` naming ``path`` and the first bad field.

        >>> Document.from_json({"schema": SCHEMA}, "r.json")
        Traceback (most recent call last):
        ...
        picozoo.errors.ResultFileError: r.json is not a valid picozoo.bench/1 result: $: missing \
required property 'created' (pass a file written by `picozoo bench --format json`)
        """
        try:
            f = Fields(data)
            if f.get("schema", "string") != SCHEMA:
                raise f.error(f"expected {SCHEMA!r}, got {f.data['schema']!r}", "schema")
            return cls(
                created=f.string("created"),
                device=f.string("device"),
                environment=Environment.from_fields(f.obj("environment")),
                settings=RunSettings.from_fields(f.obj("settings")),
                cells=tuple(Cell.from_fields(c) for c in f.objects("cells")),
                notes=f.strings("notes") if "notes" in f.data else (),
            )
        except FieldError as e:
            raise ResultFileError(
                f"{path} is not a valid {SCHEMA} result: {e}", hint=RESULT_HINT
            ) from e


def _drop_unset(d: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """``d`` without the optional ``keys`` that are unset (None or False), so that results
    written before those fields existed read and write back unchanged.

    >>> _drop_unset({"a": 1, "b": None, "c": False}, ("b", "c"))
    {'a': 1}
    """
    for k in keys:
        if d.get(k) in (None, False):
            d.pop(k, None)
    return d


#: The default largest result file :func:`load_document` reads (``PICOZOO_MAX_RESULT_BYTES``).
MAX_RESULT_BYTES = 16 << 20


def load_document(path: Path, *, max_bytes: int = MAX_RESULT_BYTES) -> Document:
    """Read and validate a saved result; raises :class:`~picozoo.errors.ResultFileError`.

    Only a regular file of at most ``max_bytes`` is read (its size is checked before reading,
    so memory stays bounded); JSON nested too deeply for Python is refused like any bad file.

    >>> load_document(Path("/nonexistent.json"))
    Traceback (most recent call last):
    ...
    picozoo.errors.ResultFileError: cannot read /nonexistent.json: No such file or directory \
(check the path)
    """
    try:
        data = json.loads(_read_capped(Path(path), max_bytes))
    except OSError as e:
        raise ResultFileError(
            f"cannot read {path}: {e.strerror or e}", hint="check the path"
        ) from e
    except RecursionError as e:
        raise ResultFileError(
            f"{path} is not a result: JSON nested too deeply", hint=RESULT_HINT
        ) from e
    except ValueError as e:
        raise ResultFileError(f"{path} is not JSON ({e})", hint=RESULT_HINT) from e
    try:
        return Document.from_json(data, path)
    except RecursionError as e:
        raise ResultFileError(f"{path} is not a result: nested too deeply", hint=RESULT_HINT) from e


def _read_capped(path: Path, max_bytes: int) -> str:
    """The text of ``path``, a regular file of at most ``max_bytes`` (never reads more)."""
    import stat

    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NONBLOCK)) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ResultFileError(f"cannot read {path}: not a regular file", hint=RESULT_HINT)
        if st.st_size > max_bytes:
            raise _too_large(path, f"{st.st_size} bytes", max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read
        raise _too_large(path, f"more than {max_bytes} bytes", max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ResultFileError(f"{path} is not UTF-8 text ({e.reason})", hint=RESULT_HINT) from e


def _too_large(path: Path, size: str, max_bytes: int) -> ResultFileError:
    return ResultFileError(
        f"{path} is too large for a result file ({size}; at most {max_bytes})",
        hint="pass a file written by `picozoo bench --format json`, or raise "
        "PICOZOO_MAX_RESULT_BYTES",
    )
