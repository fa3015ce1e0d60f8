"""A Paddle inference model folder: its files (both formats), and its ``infer_cfg.yml``.

An upstream tarball unpacks to ``picodet_s_416_coco_lcnet/{model.pdmodel, model.pdiparams,
infer_cfg.yml}``; a model saved by paddlepaddle 3 with PIR has ``model.json`` instead of
``model.pdmodel``. ``infer_cfg.yml`` (written by PaddleDetection's exporter) holds the
pre-processing (``Resize``, ``NormalizeImage``, ``Permute``), the label list and the NMS
settings of the exported model. This is the one place that reads either. ``infer_cfg.yml``
is read with picozoo's strict YAML loader (:mod:`picozoo.yaml_strict`: no aliases, duplicate
keys or non-finite numbers) and every field picozoo uses is checked (:meth:`InferConfig.parse`),
then against the model it runs (:meth:`InferConfig.check_model`); a refusal names the file and
the field, exit 2 for a file the user gave, 5 inside a pulled tarball (pulls check it after
unpacking, so a bad one is never cached or pinned).

>>> find_paddle_model(Path("/nonexistent"))
Traceback (most recent call last):
...
picozoo.errors.ModelFileError: /nonexistent: no such file or directory \
(give a Paddle inference directory with model.pdmodel or model.json, and model.pdiparams)
>>> InferConfig.parse({"Preprocess": [{"type": "Resize", "target_size": [320, 320]}]}).input_size
(320, 320)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .atomic import sha256_file
from .errors import BadArchiveError, InferConfigError, ModelFileError, PicozooError
from .yaml_strict import StrictYamlError, read_text, strict_yaml

#: Program files, in order of preference (upstream ships model.pdmodel).
MODEL_FILES = ("model.pdmodel", "model.json", "inference.pdmodel", "inference.json")
PARAMS_SUFFIX = ".pdiparams"
INFER_CFG = "infer_cfg.yml"
_HINT = "give a Paddle inference directory with model.pdmodel or model.json, and model.pdiparams"


@dataclass(frozen=True)
class NmsSettings:
    """Multi-class NMS settings (PaddleDetection's ``MultiClassNMS``)."""

    score_threshold: float
    nms_threshold: float
    nms_top_k: int
    keep_top_k: int


#: Upstream's evaluation settings (``configs/picodet/_base_/picodet_v2.yml``).
EVAL_NMS = NmsSettings(score_threshold=0.025, nms_threshold=0.6, nms_top_k=1000, keep_top_k=100)


#: Largest ``Resize.target_size`` side accepted. PaddleDetection's exports use at most 1333
#: (Faster R-CNN's keep-ratio bound; PicoDet 320-640, its layout models 800x608): 4096 leaves
#: room for any real one and caps the input at 3x4096x4096 float32 (192 MiB), where a hostile
#: ``[100000, 100000]`` asked for 30 GB before anything ran.
MAX_SIDE = 4096
#: Largest ``infer_cfg.yml`` read (upstream's are 1-3 KB, COCO's 80 labels included).
MAX_CONFIG_BYTES = 1 << 20
#: Most labels in ``label_list``, and the longest label.
MAX_LABELS, MAX_LABEL_CHARS = 10_000, 256
#: The pre-processing steps picozoo runs (PaddleDetection's PicoDet export writes these three).
STEPS = ("Resize", "NormalizeImage", "Permute")


@dataclass(frozen=True)
class InferConfig:
    """What ``infer_cfg.yml`` says about running the model.

    ``source`` is the file it was read from (as the user knows it), ``artifact`` the label of
    the pulled tarball holding it ("" for a file the user gave): they name the file in a
    refusal, and choose its exit code (5 inside an artifact, 2 otherwise).
    """

    input_size: tuple[int, int] | None = None  #: Resize target_size (H, W)
    keep_ratio: bool = False
    interp: int = 2
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    is_scale: bool = True
    labels: tuple[str, ...] = ()
    nms: NmsSettings | None = None
    draw_threshold: float = 0.5
    preprocess: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    source: str = field(default="", repr=False, compare=False)
    artifact: str = field(default="", repr=False, compare=False)

    @classmethod
    def parse(cls, data: Any, source: str = INFER_CFG) -> InferConfig:
        """From the parsed YAML mapping, every field the pre-processing, the NMS and the labels
        use checked (:class:`~picozoo.errors.InferConfigError` names the first bad one);
        fields picozoo does not use are ignored.

        >>> InferConfig.parse({"Preprocess": [{"type": "Resize", "target_size": [0, 320]}]})
        Traceback (most recent call last):
        ...
        picozoo.errors.InferConfigError: infer_cfg.yml: field 'Preprocess[0].target_size': \
must be two positive integers (height, width) of at most 4096, got [0, 320] (...)
        """
        return _Fields(source).config(data)

    @classmethod
    def from_text(cls, text: str, source: str = INFER_CFG) -> InferConfig:
        """:meth:`parse` of ``text`` read with picozoo's strict YAML loader."""
        try:
            data = strict_yaml(text)
        except StrictYamlError as e:
            raise InferConfigError(source, e.problem) from e
        return cls.parse(data, source)

    @classmethod
    def load(cls, path: Path, *, artifact: str | None = None) -> InferConfig:
        """Read and check ``path`` (a regular file of at most :data:`MAX_CONFIG_BYTES`).

        Raises :class:`~picozoo.errors.InferConfigError` (exit 2), or with ``artifact`` (the
        label of the pulled tarball holding it) the :class:`~picozoo.errors.BadArchiveError`
        (exit 5) of :meth:`~picozoo.errors.InferConfigError.in_artifact`.
        """
        source = INFER_CFG if artifact else str(path)
        try:
            try:
                text = read_text(Path(path), max_bytes=MAX_CONFIG_BYTES)
            except StrictYamlError as e:
                raise InferConfigError(source, e.problem) from e
            cfg = cls.from_text(text, source)
        except InferConfigError as e:
            if artifact:
                raise e.in_artifact(artifact) from e
            raise
        return replace(cfg, artifact=artifact or "")

    def refuse(self, problem: str, field: str | None = None) -> PicozooError:
        """The error for a problem of this config (exit 5 inside an artifact, else 2)."""
        err = InferConfigError(self.source or INFER_CFG, problem, field=field)
        return err.in_artifact(self.artifact) if self.artifact else err

    def check_model(self, inputs: list[Any], outputs: list[Any], model: Any = None) -> None:
        """Refuse, before anything runs, a config that contradicts the model: its inputs and
        outputs (``name`` and ``shape``, ``None``/strings for dynamic dims, as
        :meth:`picozoo.runtime.Runtime.inputs` gives them). The model must take ``image``
        (what PaddleDetection's exports name it, and what picozoo feeds); a fixed-size
        ``image`` must be the ``Resize.target_size``; ``keep_ratio`` gives each image its own
        size, so it needs a dynamic input and a model with NMS (``scale_factor``: picozoo
        decodes the others on the ``target_size`` grid); ``label_list`` must name every class
        of the score maps when the model declares their size. ``model``: the model's path,
        named in the refusal of a model without ``image``.

        >>> cfg = InferConfig.parse({"Preprocess": [{"type": "Resize", "target_size": 320}]})
        >>> cfg.check_model([_T("image", [1, 3, 416, 416])], [])
        Traceback (most recent call last):
        ...
        picozoo.errors.InferConfigError: infer_cfg.yml: field 'Preprocess[0].target_size': \
[320, 320] contradicts the model's fixed input 416x416 (...)
        """
        names = [str(i.name) for i in inputs]
        image = next((i for i in inputs if i.name == "image"), None)
        if image is None:
            raise ModelFileError(
                f"{model or 'the model'}: its inputs are "
                f"{', '.join(repr(n) for n in names) or 'none'}; picozoo feeds the image as "
                "'image' (PaddleDetection's export name)",
                hint="give a PicoDet exported by PaddleDetection: input 'image', and "
                "'scale_factor' when it runs NMS",
            )
        resize = self._resize_field()
        shape = list(image.shape or [])
        hw = shape[2:4] if len(shape) == 4 else []
        fixed = len(hw) == 2 and all(_is_int(d) and d > 0 for d in hw)
        takes_scale = "scale_factor" in names
        if self.keep_ratio and (fixed or not takes_scale):
            why = (
                f"this model's input is fixed at {hw[0]}x{hw[1]}"
                if fixed
                else "picozoo decodes a model without NMS on the target_size grid"
            )
            raise self.refuse(
                f"true gives each image its own size, and {why}: set it to false (as PicoDet "
                "exports do)",
                f"{resize}.keep_ratio",
            )
        if fixed and self.input_size is not None and tuple(hw) != self.input_size:
            raise self.refuse(
                f"{list(self.input_size)} contradicts the model's fixed input {hw[0]}x{hw[1]}",
                f"{resize}.target_size",
            )
        if not takes_scale:
            self.check_classes(_class_count(outputs))

    def check_classes(self, classes: int | None) -> None:
        """Refuse a ``label_list`` that does not name each of the model's ``classes`` (None:
        unknown; an empty list is allowed: ``infer`` warns that it shows class indices)."""
        if classes is not None and self.labels and len(self.labels) != classes:
            raise self.refuse(
                f"{len(self.labels)} labels, the model has {classes} classes", "label_list"
            )

    def _resize_field(self) -> str:
        i = next((n for n, s in enumerate(self.preprocess) if s.get("type") == "Resize"), 0)
        return f"Preprocess[{i}]"


@dataclass(frozen=True)
class _T:
    """A tensor's name and shape (for doctests)."""

    name: str
    shape: list[Any]


def _class_count(outputs: list[Any]) -> int | None:
    """The class count of a no-post-processing PicoDet (its 4 score maps ``[1, N, C]`` come
    first of 8 outputs) when the model declares it, else None."""
    if len(outputs) != 8:
        return None
    shapes = [list(o.shape or []) for o in outputs[:4]]
    dims = {s[2] if len(s) == 3 else None for s in shapes}
    c: Any = dims.pop() if len(dims) == 1 else None
    return int(c) if _is_int(c) and c > 0 else None


class _Fields:
    """Reads an ``infer_cfg.yml`` mapping field by field, naming the first bad one."""

    def __init__(self, source: str) -> None:
        self.source = source

    def bad(self, field: str | None, problem: str) -> InferConfigError:
        return InferConfigError(self.source, problem, field=field)

    def config(self, data: Any) -> InferConfig:
        if not isinstance(data, dict):
            raise self.bad(None, f"must be a YAML mapping, got {_shown(data)}")
        raw = data.get("Preprocess")
        raw = [] if raw is None else raw
        if not isinstance(raw, list):
            raise self.bad("Preprocess", f"must be a list of steps, got {_shown(raw)}")
        found: dict[str, int] = {}
        for i, step in enumerate(raw):
            name = f"Preprocess[{i}]"
            if not isinstance(step, dict):
                raise self.bad(name, f"must be a mapping with a type, got {_shown(step)}")
            kind = step.get("type")
            if kind not in STEPS:
                raise self.bad(
                    f"{name}.type",
                    f"picozoo runs {', '.join(STEPS)} (PaddleDetection's PicoDet export), "
                    f"got {_shown(kind)}",
                )
            if kind in found:
                raise self.bad(name, f"a second {kind} (the first is Preprocess[{found[kind]}])")
            found[kind] = i
        kw: dict[str, Any] = {"preprocess": tuple(raw), "source": self.source}
        if "Resize" in found:
            i = found["Resize"]
            kw.update(self.resize(raw[i], f"Preprocess[{i}]"))
        if "NormalizeImage" in found:
            i = found["NormalizeImage"]
            kw.update(self.normalize(raw[i], f"Preprocess[{i}]"))
        kw["labels"] = self.labels(data.get("label_list"))
        if data.get("NMS") is not None:
            kw["nms"] = self.nms(data["NMS"])
        if data.get("draw_threshold") is not None:
            kw["draw_threshold"] = self.number(data["draw_threshold"], "draw_threshold", 0, 1)
        return InferConfig(**kw)

    def resize(self, step: dict[str, Any], name: str) -> dict[str, Any]:
        size: Any = step.get("target_size")
        if _is_int(size):
            size = [size, size]  # upstream's Resize takes an int for a square
        ok = isinstance(size, list) and len(size) == 2 and all(_is_int(x) for x in size)
        if not ok or not all(0 < x <= MAX_SIDE for x in size):
            raise self.bad(
                f"{name}.target_size",
                f"must be two positive integers (height, width) of at most {MAX_SIDE}, "
                f"got {_shown(size)}",
            )
        out: dict[str, Any] = {"input_size": (int(size[0]), int(size[1]))}
        out["keep_ratio"] = self.boolean(step, "keep_ratio", name, False)
        interp = step.get("interp", 2)
        if not _is_int(interp) or not 0 <= interp <= 4:
            raise self.bad(
                f"{name}.interp",
                "must be an OpenCV interpolation code 0-4 (nearest, linear, cubic, area, "
                f"lanczos4), got {_shown(interp)}",
            )
        out["interp"] = int(interp)
        return out

    def normalize(self, step: dict[str, Any], name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"is_scale": self.boolean(step, "is_scale", name, True)}
        norm_type = step.get("norm_type", "mean_std")
        if norm_type not in ("mean_std", "none"):
            raise self.bad(
                f"{name}.norm_type", f"must be 'mean_std' or 'none', got {_shown(norm_type)}"
            )
        if norm_type == "none":  # upstream skips (x - mean) / std: the same as 0 and 1
            return {**out, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        for key, default in (("mean", InferConfig.mean), ("std", InferConfig.std)):
            value = step.get(key, list(default))
            ok = isinstance(value, list) and len(value) == 3 and all(_is_number(x) for x in value)
            if not ok or not all(_finite(x) for x in value):
                raise self.bad(
                    f"{name}.{key}", f"must be three finite numbers (R, G, B), got {_shown(value)}"
                )
            if key == "std" and any(x == 0 for x in value):
                raise self.bad(f"{name}.std", f"must not be zero (it divides), got {value}")
            out[key] = tuple(float(x) for x in value)
        return out

    def boolean(self, step: dict[str, Any], key: str, name: str, default: bool) -> bool:
        value = step.get(key, default)
        if not isinstance(value, bool):
            got = f"the string {value!r}" if isinstance(value, str) else _shown(value)
            raise self.bad(f"{name}.{key}", f"must be true or false, got {got}")
        return value

    def labels(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > MAX_LABELS:
            raise self.bad(
                "label_list", f"must be a list of at most {MAX_LABELS} names, got {_shown(value)}"
            )
        for i, x in enumerate(value):
            ok = _is_int(x) or isinstance(x, str)
            if not ok or len(str(x)) > MAX_LABEL_CHARS:
                raise self.bad(
                    f"label_list[{i}]",
                    f"must be a name of at most {MAX_LABEL_CHARS} characters, got {_shown(x)}",
                )
        return tuple(str(x) for x in value)

    def nms(self, d: Any) -> NmsSettings:
        if not isinstance(d, dict):
            raise self.bad("NMS", f"must be a mapping, got {_shown(d)}")
        e = EVAL_NMS
        score = d.get("score_threshold", e.score_threshold)
        iou = d.get("nms_threshold", e.nms_threshold)
        return NmsSettings(
            score_threshold=self.number(score, "NMS.score_threshold", 0, 1),
            nms_threshold=self.number(iou, "NMS.nms_threshold", 0, 1, open_low=True),
            nms_top_k=self.top_k(d.get("nms_top_k", e.nms_top_k), "NMS.nms_top_k"),
            keep_top_k=self.top_k(d.get("keep_top_k", e.keep_top_k), "NMS.keep_top_k"),
        )

    def number(
        self, value: Any, name: str, low: float, high: float, *, open_low: bool = False
    ) -> float:
        ok = _is_number(value) and _finite(value)
        ok = ok and (low < value if open_low else low <= value) and value <= high
        if not ok:
            span = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
            raise self.bad(name, f"must be a number in {span}, got {_shown(value)}")
        return float(value)

    def top_k(self, value: Any, name: str) -> int:
        if not _is_int(value) or value == 0 or value < -1:
            raise self.bad(name, f"must be -1 (all) or a positive integer, got {_shown(value)}")
        return int(value)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite(x: int | float) -> bool:
    """True for a finite number a float holds (``10**400`` is not: it overflows)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def _shown(value: Any, limit: int = 60) -> str:
    """``value`` in one line of at most ``limit`` characters (a refusal is one line).

    >>> _shown(None), _shown("false"), _shown([0, 320]), _shown(list(range(100)))[-6:]
    ('none', "'false'", '[0, 320]', ' 16...')
    """
    if value is None:
        return "none"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class PaddleModel:
    """The files of one Paddle inference model."""

    model_file: Path
    params_file: Path | None
    infer_cfg: Path | None

    @property
    def directory(self) -> Path:
        return self.model_file.parent

    @property
    def format(self) -> str:
        """``legacy`` (model.pdmodel, ProgramDesc protobuf) or ``pir`` (model.json)."""
        return "pir" if self.model_file.suffix == ".json" else "legacy"

    def sha256(self) -> dict[str, str]:
        """sha256 of the model file, the params file, and of both together (``combined``)."""
        model = sha256_file(self.model_file)
        params = sha256_file(self.params_file) if self.params_file else ""
        combined = hashlib.sha256(f"{model}:{params}".encode()).hexdigest()
        return {"model": model, "params": params, "combined": combined}

    def config(self, *, artifact: str | None = None) -> InferConfig:
        """The checked ``infer_cfg.yml`` (defaults when there is none); ``artifact``: the
        label of the pulled tarball it is in (see :meth:`InferConfig.load`)."""
        if self.infer_cfg is None:
            return InferConfig()
        return InferConfig.load(self.infer_cfg, artifact=artifact)

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The exported input size (``Resize.target_size``), if ``infer_cfg.yml`` gives one."""
        return self.config().input_size


def find_paddle_model(path: Path) -> PaddleModel:
    """Locate the model in ``path``: a model file, a directory, or a directory holding one folder.

    ``model.pdmodel`` wins over ``model.json`` when both exist (that is what upstream ships).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory", hint=_HINT)
    if path.is_file():
        if path.name.endswith((".pdmodel", ".json")):
            return _files(path)
        raise ModelFileError(f"{path}: not a Paddle model file", hint=_HINT)
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        for name in MODEL_FILES:
            if (d / name).is_file():
                return _files(d / name)
        found = sorted(d.glob("*.pdmodel")) + sorted(d.glob("*.json"))
        found = [f for f in found if f.with_suffix(PARAMS_SUFFIX).is_file()]
        if found:
            return _files(found[0])
    raise ModelFileError(f"{path}: no model.pdmodel or model.json found", hint=_HINT)


def is_paddle_model(path: Path) -> bool:
    """True when ``path`` holds a Paddle inference model (see :func:`find_paddle_model`)."""
    try:
        find_paddle_model(path)
    except ModelFileError:
        return False
    return True


def config_beside(path: Path) -> Path | None:
    """The ``infer_cfg.yml`` beside a model: in folder ``path``, or beside file ``path``
    (None when there is none). The one rule every command uses.

    >>> config_beside(Path("/nonexistent/model.onnx")) is None
    True
    """
    path = Path(path)
    cfg = (path if path.is_dir() else path.parent) / INFER_CFG
    return cfg if cfg.is_file() else None


def missing_inference_files(path: Path) -> list[str]:
    """What folder ``path`` lacks to be a Paddle inference model as upstream ships one
    (``model.pdmodel`` or ``model.json``, ``model.pdiparams``, ``infer_cfg.yml``); empty when
    it is complete. The one folder rule: pulls check it after unpacking, ``verify`` again.

    >>> missing_inference_files(Path("/nonexistent"))
    ['model.pdmodel or model.json', 'model.pdiparams', 'infer_cfg.yml']
    """
    missing = []
    if not any((path / f).is_file() for f in MODEL_FILES[:2]):
        missing.append(" or ".join(MODEL_FILES[:2]))
    missing += [f for f in ("model.pdiparams", INFER_CFG) if not (path / f).is_file()]
    return missing


def check_inference_dir(path: Path, label: str) -> None:
    """Raise :class:`BadArchiveError` unless ``path`` is a complete inference model folder
    (see :func:`missing_inference_files`) whose ``infer_cfg.yml`` passes
    :meth:`InferConfig.load` (pulls check it after unpacking: a refused config is never
    cached or pinned)."""
    missing = missing_inference_files(path)
    if missing:
        raise BadArchiveError(
            f"{label} is not a Paddle inference model: missing {', '.join(missing)}",
            hint="the file at this URL is not what the registry says; check the mirror/registry",
        )
    InferConfig.load(path / INFER_CFG, artifact=label)


def inference_kind(
    kinds: list[str], *, postprocess: bool, fallback: bool = True
) -> tuple[str, bool]:
    """The inference tarball kind to use for a model with artifact ``kinds``, and whether it
    includes post-processing. Without post-processing, a model that has only the
    post-processed tarball (the 2021 legacy models) falls back to it when ``fallback``.

    >>> inference_kind(["inference", "inference-nopp"], postprocess=False)
    ('inference-nopp', False)
    >>> inference_kind(["inference"], postprocess=False)
    ('inference', True)
    """
    wanted = "inference" if postprocess else "inference-nopp"
    if fallback and wanted not in kinds and not postprocess and "inference" in kinds:
        return "inference", True
    return wanted, postprocess


def _files(model_file: Path) -> PaddleModel:
    params = model_file.with_suffix(PARAMS_SUFFIX)
    return PaddleModel(
        model_file=model_file,
        params_file=params if params.is_file() else None,
        infer_cfg=config_beside(model_file),
    )
