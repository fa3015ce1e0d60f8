"""Measured mAP for benchmark cells: the ``picozoo eval`` result of the very file a cell benched.

A cached eval result (``<cache>/evals/*.json``, see
:func:`picozoo.detect.evaluate.cached_evals`) belongs to a cell when its ``model_sha256`` is
the benched file's (hashed the way ``eval`` hashes it: the file's sha256, or for a Paddle folder
its model + params), and its engine and precision are the cell's. When several data sets scored
that file, the one with the most images wins (COCO val2017 over a quick subset); ties go to the
first in the cache's order. The match is stored in the cell when the bench runs, so a saved
result keeps it.

>>> ev = {"model_sha256": "ab" * 32, "engine": "onnxruntime", "precision": "fp32",
...       "dataset": "f00d", "images": 3, "stats": {"AP": 0.5, "AP50": 0.75}}
>>> match_eval([ev], "ab" * 32, "onnxruntime", "fp32")
MeasuredMap(ap=0.5, ap50=0.75, images=3, dataset='f00d', ann_file=None)
>>> match_eval([ev], "ab" * 32, "openvino", "fp32") is None
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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


def _as_measured(result: Mapping[str, Any]) -> MeasuredMap | None:
    """The mAP of one eval result, None when it is not a usable one."""
    stats = result.get("stats")
    if not isinstance(stats, Mapping):
        return None
    ap, ap50, images = _number(stats.get("AP")), _number(stats.get("AP50")), result.get("images")
    if ap is None or not isinstance(images, int) or isinstance(images, bool):
        return None
    ann = result.get("ann_file")
    return MeasuredMap(
        ap=ap,
        ap50=ap50,
        images=images,
        dataset=str(result.get("dataset") or "unknown"),
        ann_file=ann if isinstance(ann, str) else None,
    )


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a finite number >= 0 (an AP), else None."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf"):
        return float(v)
    return None


def match_eval(
    evals: Iterable[Mapping[str, Any]], sha256: str | None, engine: str, precision: str
) -> MeasuredMap | None:
    """The measured mAP of the file with ``sha256`` on ``engine`` at ``precision`` (see the
    module docstring); None when no eval result matches."""
    if not sha256:
        return None
    best: MeasuredMap | None = None
    for r in evals:
        same = (
            r.get("model_sha256") == sha256
            and r.get("engine") == engine
            and (r.get("precision") or "fp32") == precision
        )
        m = _as_measured(r) if same else None
        if m is not None and (best is None or m.images > best.images):
            best = m
    return best


def measured_map_for(
    path: Path,
    engine: str,
    precision: str,
    evals: Iterable[Mapping[str, Any]],
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


def load_evals(store_root: Path) -> list[dict[str, Any]]:
    """Every cached eval result of the store at ``store_root`` ([] when none can be read).

    >>> load_evals(Path("/nonexistent"))
    []
    """
    from ..detect.evaluate import cached_evals

    with contextlib.suppress(OSError):
        return cached_evals(Path(store_root))
    return []
