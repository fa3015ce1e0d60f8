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
from ..hub.store import Store
from ..paddle_dir import InferConfig, config_beside
from ..resolve import onnx_kind, plan, realize
from ..targets import Target
from .result import ConversionResult
from .sources import OnnxFile, Progress, Source, local_label, upstream_origin

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
    """The ONNX source of an engine conversion of ``target`` (see the module docstring;
    :func:`picozoo.resolve.plan` in format ``onnx`` with ``source="chain"``);
    ``to_onnx(target)`` runs the ``--to onnx`` conversion.

    >>> engine_source(store, resolve_arg("picodet-s-416", registry), postprocess=False,
    ...               to_onnx=functools.partial(convert, store)).origin["onnx"]  # doctest: +SKIP
    {'from': 'converted', 'key': '8c58bcea9e5d5ec2', 'parity_passed': True}
    """
    p = plan(target, "onnx", postprocess=postprocess, source="chain")
    if p.origin == "file":
        assert target.path is not None
        return onnx_file_source(target.path)
    if p.origin == "upstream":
        assert target.model is not None
        wanted = onnx_kind(postprocess)
        if p.kind != wanted and progress is not None:
            progress(
                f"{target.model.id}: has no {wanted} artifact, converting its {p.kind} instead"
            )
        pulled = realize(p, store, progress=progress)
        facts = upstream_origin(pulled)
        facts["onnx"] = {"from": "upstream"}
        return Source(OnnxFile(pulled.path), target.model.id, facts, pulled.input_size)

    def convert(
        _store: Store,
        t: Target,
        /,
        *,
        to: str,
        postprocess: bool,
        precision: str | None,
        progress: Progress | None,
    ) -> ConversionResult:
        return to_onnx(t)  # to="onnx"; its options are bound by the caller

    made = realize(p, store, convert=convert, progress=progress)
    prov = made.provenance
    origin: dict[str, Any] = {k: v for k, v in prov.get("source", {}).items() if k in _ORIGIN_KEYS}
    origin["onnx"] = {
        "from": "converted",
        "key": prov.get("key"),
        "parity_passed": (prov.get("parity") or {}).get("passed"),
    }
    return Source(OnnxFile(made.path), made.cache_label or made.label, origin, made.input_size)


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
    beside = config_beside(path)
    cfg = InferConfig.load(beside) if beside else None
    size = cfg.input_size if cfg else None
    origin = {"path": str(path.resolve()), "onnx": {"from": "file"}}
    return Source(OnnxFile(path), local_label(path), origin, size)
