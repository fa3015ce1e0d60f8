"""Measured mAP for benchmark cells: the ``picozoo eval`` result of the very file a cell benched.

A cached eval result (an :class:`~picozoo.hub.eval_result.EvalResult` in ``<cache>/evals/``,
see :meth:`picozoo.hub.store.Store.evals`) belongs to a cell when its ``model_sha256`` is
the benched file's (hashed the way ``eval`` hashes it: the file's sha256, or for a Paddle folder
its model + params), and its engine and precision are the cell's (eval records the precision
its engine executed). When several evals scored that file, all of COCO val2017 with upstream's
evaluation NMS wins (as the claims were measured), then upstream's NMS on another set, then the
one with the most images; ties go to the first in the cache's order. An eval with another NMS
(``--nms deploy``, ``--iou``, ``--conf``) says so wherever its mAP is shown. The match is
stored in the cell when the bench runs, so a saved result keeps it.

>>> ev = EvalResult(model="m", model_path="m.onnx", model_sha256="ab" * 32,
...                 engine="onnxruntime", precision="fp32", dataset="f00d", nms={}, images=3,
...                 ann_file=None, stats={"AP": 0.5, "AP50": 0.75})
>>> match_eval([ev], "ab" * 32, "onnxruntime", "fp32").set_label
'data set (3 images, data set f00d)'
>>> match_eval([ev], "ab" * 32, "openvino", "fp32") is None
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..hub.eval_result import EvalResult
from .records import MeasuredMap


def eval_sha256(path: Path) -> str | None:
    """The sha256 ``picozoo eval`` records for the model at ``path`` (None: unreadable).

    >>> eval_sha256(Path("/nonexistent.onnx")) is None
    True
    """
    from ..detect.evaluate import model_sha256

    try:
        return model_sha256(Path(path))
    except Exception:  # a file that vanished, a folder that is not a Paddle model
        return None


def _as_measured(result: EvalResult) -> MeasuredMap | None:
    """The mAP of one eval result, None when it is not a usable one."""
    ap, ap50 = _number(result.ap), _number(result.ap50)
    if ap is None or result.images is None:
        return None
    return MeasuredMap(
        ap=ap,
        ap50=ap50,
        images=result.images,
        dataset=result.dataset or "unknown",
        ann_file=result.ann_file,
        ann_sha256=result.ann_sha256,
        dataset_name=result.dataset_name,
        dataset_images=result.dataset_images,
        nms=None if _default_nms(result.nms) else dict(result.nms),
    )


def _default_nms(nms: dict[str, Any]) -> bool:
    """Whether an eval result's NMS record is upstream's evaluation settings (a setting it
    does not record is taken as those settings': results of versions before the record
    existed have none).

    >>> _default_nms({}), _default_nms({"score_threshold": 0.025})
    (True, True)
    >>> _default_nms({"mode": "deploy", "score_threshold": 0.4})
    False
    """
    from ..detect.deploy import nms_record
    from ..paddle_dir import EVAL_NMS

    default = nms_record("eval", EVAL_NMS)
    return set(nms) <= set(default) and all(nms.get(k, v) == v for k, v in default.items())


def _number(v: float | None) -> float | None:
    """``v`` when it is a finite number >= 0 (an AP), else None."""
    return v if v is not None and 0 <= v < float("inf") else None


def _rank(m: MeasuredMap) -> tuple[bool, bool, int]:
    """All of COCO val2017 with upstream's NMS first, then upstream's NMS, then the most
    images."""
    return (m.coco_val2017, m.nms is None, m.images)


def match_eval(
    evals: Iterable[EvalResult], sha256: str | None, engine: str, precision: str
) -> MeasuredMap | None:
    """The measured mAP of the file with ``sha256`` on ``engine`` at ``precision`` (see the
    module docstring); None when no eval result matches."""
    if not sha256:
        return None
    best: MeasuredMap | None = None
    for r in evals:
        same = r.model_sha256 == sha256 and r.engine == engine and r.precision == precision
        m = _as_measured(r) if same else None
        if m is not None and (best is None or _rank(m) > _rank(best)):
            best = m
    return best


def measured_map_for(
    path: Path,
    engine: str,
    precision: str,
    evals: Iterable[EvalResult],
    file_sha256: str | None = None,
) -> MeasuredMap | None:
    """:func:`match_eval` for the model at ``path`` (``file_sha256``: its hash when already
    known; a folder is hashed the way ``eval`` hashes it).

    >>> measured_map_for(Path("/nonexistent.onnx"), "onnxruntime", "fp32", []) is None
    True
    """
    evals = list(evals)
    if not evals:
        return None
    sha = file_sha256 if file_sha256 and Path(path).is_file() else eval_sha256(path)
    return match_eval(evals, sha, engine, precision)


def load_evals(store_root: Path) -> list[EvalResult]:
    """Every cached eval result of the store at ``store_root`` ([] when none can be read).

    >>> load_evals(Path("/nonexistent"))
    []
    """
    from ..hub.store import Store
    from ..settings import Settings

    with contextlib.suppress(OSError):
        return Store(Settings(cache_dir=Path(store_root))).evals()
    return []
