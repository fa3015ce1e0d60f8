"""A ``picozoo eval`` result as a typed record (the ``evals/<digest>.json`` files of the store).

The store keeps one file per (model file sha256, engine, precision, data set fingerprint, NMS
settings, parsed ``infer_cfg.yml``): :func:`eval_digest` names it. The precision is the one
the engine executed, read back after loading (``eval`` refuses a precision the CPU cannot
run, so it is also the one asked); ``executed_precision`` says it was read back (results of
earlier versions recorded the precision asked, whatever ran: :attr:`EvalResult.precision_label`
says so), ``threads`` the engine threads ``images_per_s`` was measured with. The data set
fingerprint covers the annotation file's bytes and each image file (path, size, mtime, ctime,
inode).
Files written by earlier versions (plain JSON objects with ``"schema": "picozoo.eval/1"``)
read unchanged; their key has no ``config``, so they are never served for a new run.

Every result names its data set: ``dataset_name`` (:data:`COCO_VAL2017` when the annotation
file is COCO's val2017 -- 5000 images, COCO's 80 categories -- else the annotation file's
name), ``ann_sha256`` (the annotation file's bytes), ``dataset_images`` (the images it lists)
and ``images`` (those evaluated: fewer with ``--limit``). Results written before these fields
existed have them unset (:meth:`EvalResult.set_label` says "data set <fingerprint>").

>>> r = EvalResult(model="m", model_path="/m.onnx", model_sha256="ab" * 32,
...                engine="onnxruntime", precision="fp32", dataset="f00d", nms={},
...                images=3, ann_file="/a.json", stats={"AP": 0.5, "AP50": 0.75})
>>> EvalResult.from_json(json.loads(r.to_json())) == r, r.ap, r.digest() == eval_digest(r.key)
(True, 0.5, True)
>>> EvalResult.from_json({"schema": "other"}) is None
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "picozoo.eval/1"
#: the name of COCO's val2017 set, the set upstream's mAP claims were measured on
COCO_VAL2017 = "COCO val2017"
#: the images of COCO val2017
COCO_VAL2017_IMAGES = 5000
#: The fields that identify a result (hashed into its file name by :func:`eval_digest`).
KEY_FIELDS = ("model_sha256", "engine", "precision", "dataset", "nms", "config")


def eval_digest(key: dict[str, Any]) -> str:
    """The file-name stem of the result with ``key`` (20 hex digits).

    >>> len(eval_digest({"engine": "onnxruntime"}))
    20
    """
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class EvalResult:
    """One evaluation: what was scored (model, file hash, engine, precision, data set, NMS,
    ``config``: the parsed pre-processing and labels) and its COCO scores (``stats``: the 12
    COCO numbers by name, ``per_class_ap``: AP by class name; ``None`` where COCO has none)."""

    model: str
    model_path: str
    model_sha256: str
    engine: str
    precision: str
    dataset: str
    nms: dict[str, Any]
    images: int | None
    ann_file: str | None
    stats: dict[str, float | None]
    per_class_ap: dict[str, float | None] = field(default_factory=dict)
    images_per_s: float | None = None
    inference_images_per_s: float | None = None
    detections: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    #: sha256 of the annotation file's bytes (None: a result of an earlier version)
    ann_sha256: str | None = None
    #: the images the annotation file lists (``images``: those evaluated)
    dataset_images: int | None = None
    #: :data:`COCO_VAL2017`, or the annotation file's name
    dataset_name: str | None = None
    #: what ``model_sha256`` is the sha256 of (a file's name, or a Paddle folder's two files)
    model_sha256_of: str | None = None
    #: the precision the engine computed in, read back after loading (``precision``, which
    #: the key holds, is this one: a precision the CPU cannot run is refused, never recorded);
    #: None: a result of an earlier version, which recorded the precision asked for
    executed_precision: str | None = None
    #: how it was read back (OpenVINO: the compiled model's ``INFERENCE_PRECISION_HINT``)
    precision_note: str | None = None
    #: the engine threads the images were run with (``images_per_s`` depends on them)
    threads: int | None = None

    @property
    def key(self) -> dict[str, Any]:
        """What identifies this result (see :data:`KEY_FIELDS`). A result of an earlier
        version has no ``config``: its key leaves it out, so it keeps its file name, and no
        new run (whose key has one) is ever served it."""
        return {k: getattr(self, k) for k in KEY_FIELDS if k != "config" or self.config}

    def digest(self) -> str:
        return eval_digest(self.key)

    @property
    def ap(self) -> float | None:
        """mAP 0.5:0.95 (``stats["AP"]``)."""
        return _number(self.stats.get("AP"))

    @property
    def ap50(self) -> float | None:
        return _number(self.stats.get("AP50"))

    @property
    def set_label(self) -> str:
        """The data set as reports name it (see :func:`set_label`)."""
        return set_label(self.dataset_name, self.images, self.dataset_images, self.ann_sha256,
                         self.dataset, self.ann_file)  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> EvalResult | None:
        """The result a parsed JSON object describes; None when it is not an eval result."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            return None
        stats, per_class = data.get("stats"), data.get("per_class_ap")
        images, detections = data.get("images"), data.get("detections")
        ann = data.get("ann_file")
        return cls(
            model=str(data.get("model") or ""),
            model_path=str(data.get("model_path") or ""),
            model_sha256=str(data.get("model_sha256") or ""),
            engine=str(data.get("engine") or ""),
            precision=str(data.get("precision") or "fp32"),
            dataset=str(data.get("dataset") or ""),
            nms=dict(data["nms"]) if isinstance(data.get("nms"), dict) else {},
            images=images if _is_int(images) else None,
            ann_file=ann if isinstance(ann, str) else None,
            stats=_floats(stats),
            per_class_ap=_floats(per_class),
            images_per_s=_number(data.get("images_per_s")),
            inference_images_per_s=_number(data.get("inference_images_per_s")),
            detections=detections if _is_int(detections) else None,
            config=dict(data["config"]) if isinstance(data.get("config"), dict) else {},
            ann_sha256=_str(data.get("ann_sha256")),
            dataset_images=data["dataset_images"] if _is_int(data.get("dataset_images")) else None,
            dataset_name=_str(data.get("dataset_name")),
            model_sha256_of=_str(data.get("model_sha256_of")),
            executed_precision=_str(data.get("executed_precision")),
            precision_note=_str(data.get("precision_note")),
            threads=data["threads"] if _is_int(data.get("threads")) else None,
        )

    @property
    def precision_label(self) -> str:
        """The precision as reports show it: ``bf16 as executed`` when it was read back from
        the engine, ``bf16 as asked`` for a result of an earlier version (which recorded the
        request, whatever the engine ran).

        >>> r = EvalResult("m", "m.onnx", "", "openvino", "bf16", "", {}, 3, None, {})
        >>> r.precision_label, dataclasses.replace(r, executed_precision="bf16").precision_label
        ('bf16 as asked (not read back from the engine)', 'bf16 as executed')
        """
        if self.executed_precision is None:
            return f"{self.precision} as asked (not read back from the engine)"
        return f"{self.executed_precision} as executed"

    @property
    def nms_mode(self) -> str:
        """Which NMS decoded the detections: ``deploy`` (upstream's deploy decoding, recorded
        as ``nms.mode``) or ``eval`` (upstream's evaluation settings: results without a mode,
        as every earlier version's)."""
        mode = self.nms.get("mode")
        return mode if isinstance(mode, str) else "eval"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``picozoo eval --format json`` prints it; the store keeps it); a
        result of an earlier version (no ``config``) round-trips without one. ``nms_mode``
        says which NMS ran (derived from ``nms``, not read back; not added to an earlier
        version's result, which round-trips as it was)."""
        out = {"schema": SCHEMA, **dataclasses.asdict(self)}
        if self.config:
            out["nms_mode"] = self.nms_mode
        else:
            del out["config"]
        for k in ("ann_sha256", "dataset_images", "dataset_name", "model_sha256_of",
                  "executed_precision", "precision_note", "threads"):  # fmt: skip
            if out[k] is None:  # a result of an earlier version round-trips without them
                del out[k]
        return out

    def to_json(self) -> str:
        """The JSON text the store keeps: keys sorted, the stats and classes in their own
        order (COCO's 12 stats, the data set's categories), so a cached result prints as the
        first run did."""
        d = self.to_dict()
        return json.dumps({k: d[k] for k in sorted(d)}, indent=1) + "\n"


def set_label(
    name: str | None,
    images: int | None,
    dataset_images: int | None = None,
    ann_sha256: str | None = None,
    fingerprint: str = "",
    ann_file: str | None = None,
) -> str:
    """How a report names the data set an mAP was measured on: its name, the images evaluated
    (``first N of M`` for a subset) and, for a set that is not COCO val2017, the first 12 hex
    digits of its annotation file's sha256.

    >>> set_label("COCO val2017", 5000, 5000)
    'COCO val2017 (5000 images)'
    >>> set_label("COCO val2017", 500, 5000)
    'COCO val2017 (first 500 of 5000 images)'
    >>> set_label("ann.json", 4, 4, "ab" * 32)
    'ann.json (4 images, annotations sha256 abababababab)'
    >>> set_label(None, 3, fingerprint="f00d" * 16, ann_file="/data/a.json")
    'a.json (3 images, data set f00df00df00d)'
    """
    if name is None:  # a result of an earlier version: its file name and fingerprint
        base = ann_file.replace("\\", "/").rsplit("/", 1)[-1] if ann_file else "data set"
        return f"{base} ({images} images, data set {fingerprint[:12] or 'unknown'})"
    if dataset_images is not None and images is not None and images < dataset_images:
        count = f"first {images} of {dataset_images} images"
    else:
        count = f"{images} images"
    if name != COCO_VAL2017 and ann_sha256:
        count += f", annotations sha256 {ann_sha256[:12]}"
    return f"{name} ({count})"


def is_coco_val2017(name: str | None, images: int | None) -> bool:
    """True when an mAP was measured on all of COCO val2017 (the set of upstream's claims).

    >>> is_coco_val2017("COCO val2017", 5000), is_coco_val2017("COCO val2017", 500)
    (True, False)
    """
    return name == COCO_VAL2017 and images == COCO_VAL2017_IMAGES


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a number (not a bool), else None."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _floats(v: Any) -> dict[str, float | None]:
    """Numbers by name; COCO's "none" (-1, written by earlier versions) is None.

    >>> _floats({"AP": 0.5, "APs": -1.0, "x": "y"})
    {'AP': 0.5, 'APs': None, 'x': None}
    """
    if not isinstance(v, dict):
        return {}
    return {str(k): n if (n := _number(x)) is None or n >= 0 else None for k, x in v.items()}
