"""Find the model and params files of a Paddle inference model, and fingerprint them.

An upstream tarball unpacks to ``picodet_s_416_coco_lcnet/{model.pdmodel, model.pdiparams,
infer_cfg.yml}``; a model saved by paddlepaddle 3 with PIR has ``model.json`` instead.

>>> find_paddle_model(Path("/nonexistent"))
Traceback (most recent call last):
...
picozoo.convert.errors.ConversionError: /nonexistent: no such file or directory \
(give a Paddle inference directory with model.pdmodel or model.json, and model.pdiparams)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..atomic import sha256_file
from .errors import ConversionError

MODEL_FILES = ("model.pdmodel", "model.json")
_HINT = "give a Paddle inference directory with model.pdmodel or model.json, and model.pdiparams"


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

    def target_size(self) -> tuple[int, int] | None:
        """The Resize ``target_size`` of ``infer_cfg.yml`` (what the model expects), if any."""
        if self.infer_cfg is None:
            return None
        import yaml

        try:
            cfg = yaml.safe_load(self.infer_cfg.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return None
        for step in cfg.get("Preprocess") or []:
            size = step.get("target_size") if isinstance(step, dict) else None
            if isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) for s in size):
                return (size[0], size[1])
        return None


def find_paddle_model(path: Path) -> PaddleModel:
    """Locate the model in ``path``: a model file, a directory, or a directory holding one folder.

    ``model.pdmodel`` wins over ``model.json`` when both exist (that is what upstream ships).
    """
    path = Path(path)
    if not path.exists():
        raise ConversionError(f"{path}: no such file or directory", hint=_HINT)
    if path.is_file():
        if path.name.endswith((".pdmodel", ".json")):
            return _files(path)
        raise ConversionError(f"{path}: not a Paddle model file", hint=_HINT)
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        for name in MODEL_FILES:
            if (d / name).is_file():
                return _files(d / name)
        found = sorted(d.glob("*.pdmodel")) + sorted(d.glob("*.json"))
        found = [f for f in found if f.with_suffix(".pdiparams").is_file()]
        if found:
            return _files(found[0])
    raise ConversionError(f"{path}: no model.pdmodel or model.json found", hint=_HINT)


def _files(model_file: Path) -> PaddleModel:
    params = model_file.with_suffix(".pdiparams")
    cfg = model_file.parent / "infer_cfg.yml"
    return PaddleModel(
        model_file=model_file,
        params_file=params if params.is_file() else None,
        infer_cfg=cfg if cfg.is_file() else None,
    )
