"""A Paddle inference model folder: its files (both formats), and its ``infer_cfg.yml``.

An upstream tarball unpacks to ``picodet_s_416_coco_lcnet/{model.pdmodel, model.pdiparams,
infer_cfg.yml}``; a model saved by paddlepaddle 3 with PIR has ``model.json`` instead of
``model.pdmodel``. ``infer_cfg.yml`` (written by PaddleDetection's exporter) holds the
pre-processing (``Resize``, ``NormalizeImage``, ``Permute``), the label list and the NMS
settings of the exported model. This is the one place that reads either.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import sha256_file
from .errors import BadArchiveError, ModelFileError

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


@dataclass(frozen=True)
class InferConfig:
    """What ``infer_cfg.yml`` says about running the model."""

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

    @classmethod
    def parse(cls, data: Any) -> InferConfig:
        """From the parsed YAML mapping (unknown or malformed fields keep their defaults)."""
        if not isinstance(data, dict):
            return cls()
        steps = tuple(s for s in (data.get("Preprocess") or []) if isinstance(s, dict))
        resize = next((s for s in steps if s.get("type") == "Resize"), None) or next(
            (s for s in steps if "target_size" in s), {}
        )
        norm = next((s for s in steps if s.get("type") == "NormalizeImage"), {})
        size = resize.get("target_size")
        hw: tuple[int, int] | None = None
        if isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) for x in size):
            hw = (int(size[0]), int(size[1]))
        nms = data.get("NMS")
        return cls(
            input_size=hw,
            keep_ratio=bool(resize.get("keep_ratio", False)),
            interp=int(resize.get("interp", 2)),
            mean=tuple(float(x) for x in norm.get("mean", cls.mean)),
            std=tuple(float(x) for x in norm.get("std", cls.std)),
            is_scale=bool(norm.get("is_scale", True)),
            labels=tuple(str(x) for x in data.get("label_list") or ()),
            nms=_nms(nms) if isinstance(nms, dict) else None,
            draw_threshold=float(data.get("draw_threshold", 0.5)),
            preprocess=steps,
        )

    @classmethod
    def load(cls, path: Path) -> InferConfig | None:
        """Read ``path``; None when it is missing or not YAML."""
        import yaml

        try:
            return cls.parse(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, ValueError):
            return None


def _nms(d: dict[str, Any]) -> NmsSettings:
    return NmsSettings(
        score_threshold=float(d.get("score_threshold", EVAL_NMS.score_threshold)),
        nms_threshold=float(d.get("nms_threshold", EVAL_NMS.nms_threshold)),
        nms_top_k=int(d.get("nms_top_k", EVAL_NMS.nms_top_k)),
        keep_top_k=int(d.get("keep_top_k", EVAL_NMS.keep_top_k)),
    )


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

    def config(self) -> InferConfig:
        """The parsed ``infer_cfg.yml`` (defaults when there is none)."""
        cfg = InferConfig.load(self.infer_cfg) if self.infer_cfg else None
        return cfg or InferConfig()

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
    (see :func:`missing_inference_files`)."""
    missing = missing_inference_files(path)
    if missing:
        raise BadArchiveError(
            f"{label} is not a Paddle inference model: missing {', '.join(missing)}",
            hint="the file at this URL is not what the registry says; check the mirror/registry",
        )


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
