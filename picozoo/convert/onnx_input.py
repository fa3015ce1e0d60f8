"""The ONNX that the engine formats (OpenVINO, MNN, NCNN) are converted from.

* an ``.onnx`` file on disk: as it is (self-contained only: its sha256 is the cache key);
* a Paddle inference folder, or a model id with an inference tarball: its ``--to onnx``
  conversion (cached, proved against Paddle Inference by its own parity check), so the chain
  Paddle -> ONNX -> engine is proved link by link;
* a model id without inference tarballs (the 2021 legacy models): upstream's ONNX
  (``onnx-nopp``, or ``onnx`` with post-processing), pulled into the store if missing.

>>> onnx_file_source(Path("/nonexistent/m.onnx"))
Traceback (most recent call last):
...
picozoo.errors.ModelFileError: /nonexistent/m.onnx: no such file (give an .onnx file, a Paddle \
inference folder or a model id)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, UsageError
from ..hub.registry import INFERENCE_KINDS
from ..hub.store import Store
from ..paddle_dir import INFER_CFG, InferConfig, find_paddle_model
from ..targets import Target
from .result import ConversionResult
from .sources import OnnxFile, Progress, Source, local_label, pull_artifact

#: Facts of the ONNX conversion's source that the engine conversion's provenance keeps.
_ORIGIN_KEYS = ("model_id", "kind", "url", "artifact_sha256", "postprocess", "path")


def engine_source(
    store: Store,
    target: Target,
    *,
    postprocess: bool,
    to_onnx: Callable[[Target], ConversionResult],
    progress: Progress | None = None,
) -> Source:
    """The ONNX source of an engine conversion of ``target`` (see the module docstring);
    ``to_onnx(target)`` runs the ``--to onnx`` conversion.

    >>> engine_source(store, resolve_arg("picodet-s-416", registry), postprocess=False,
    ...               to_onnx=functools.partial(convert, store)).origin["onnx"]  # doctest: +SKIP
    {'from': 'converted', 'key': '8c58bcea9e5d5ec2', 'parity_passed': True}
    """
    if target.path is not None and target.path.is_file() and target.path.suffix == ".onnx":
        return onnx_file_source(target.path)
    model = target.model
    if model is not None and not any(model.has(k) for k in INFERENCE_KINDS):
        return _upstream_source(store, target, postprocess=postprocess, progress=progress)
    result = to_onnx(target)
    prov = result.provenance
    origin: dict[str, Any] = {k: v for k, v in prov.source.to_json().items() if k in _ORIGIN_KEYS}
    origin["onnx"] = {"from": "converted", "key": prov.key, "parity_passed": prov.parity_passed}
    if model is not None:
        size: tuple[int, int] | None = model.input_size
    else:
        assert target.path is not None
        size = find_paddle_model(target.path).input_size
    return Source(OnnxFile(result.path), result.label, origin, size)


def onnx_file_source(path: Path) -> Source:
    """An ``.onnx`` file as it is; its input size comes from an ``infer_cfg.yml`` beside it."""
    from ..onnx_files import check_external_data, external_locations

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"{path}: no such file",
            hint="give an .onnx file, a Paddle inference folder or a model id",
        )
    check_external_data(path)
    if external_locations(path):
        raise UsageError(
            f"{path} keeps tensors in external data files",
            hint="give a self-contained .onnx (picozoo converts from one file, keyed by its "
            "sha256); re-save it with onnx.save(model, path, save_as_external_data=False)",
        )
    cfg = InferConfig.load(path.parent / INFER_CFG)
    size = cfg.input_size if cfg else None
    origin = {"path": str(path.resolve()), "onnx": {"from": "file"}}
    return Source(OnnxFile(path), local_label(path), origin, size)


def _upstream_source(
    store: Store, target: Target, *, postprocess: bool, progress: Progress | None
) -> Source:
    """Upstream's ONNX of a model without inference tarballs (pulled if missing)."""
    from ..targets import onnx_kind

    model = target.model
    assert model is not None
    say = progress or (lambda _m: None)
    wanted, other = onnx_kind(postprocess), onnx_kind(not postprocess)
    kind = wanted if model.has(wanted) else other
    if not model.has(kind):
        raise UsageError(
            f"{model.id} has no ONNX or Paddle inference model to convert",
            hint=f"it has: {', '.join(model.kinds)}"
            if model.kinds
            else "it is a claims-only comparison row; `picozoo list --family picodet` shows "
            "models you can pull",
        )
    if kind != wanted:
        say(f"{model.id}: has no {wanted} artifact, converting its {kind} instead")
    path, origin = pull_artifact(store, model, kind, postprocess=kind == "onnx", say=say)
    origin["onnx"] = {"from": "upstream"}
    return Source(OnnxFile(path), model.id, origin, model.input_size)
