"""The parity check of an engine conversion: the engine's model against ONNX Runtime on the
source ONNX, on seeded inputs whose outputs vary, output by output and detection by detection.

Inputs: :func:`~picozoo.convert.parity.make_inputs` for seeds 0..3 (N(0, 1) images). Outputs are
compared on every seed (the worst error per output is kept) with
:func:`~picozoo.convert.parity.compare`: scores within 1e-4; a no-post-processing PicoDet's
distance logits (its last 4 of 8 outputs) within 1e-3; boxes as in the ONNX parity check.
Detections: both sides decoded with picozoo's decoder + NMS (upstream's evaluation settings)
and matched by :func:`~picozoo.detect.agreement.agreement_on_images` (scores >= 0.3).

At fp32 any output out of tolerance is a :class:`~picozoo.errors.ParityError` (nothing is
kept). At a reduced precision (bf16, fp16, int8) the errors and the agreement are reported
(``passed: "reported"``): they are the price of that precision, not a conversion bug.

The precision the engine really computed in is read back (see
:attr:`picozoo.runtime.Runtime.executed_precision`) and recorded as ``executed_precision``;
when the engine quietly ran another precision than the one asked for (OpenVINO's bf16 on a CPU
without AVX512-BF16/AMX, ncnn's fp16 on x86...), ``precision_note`` says so and the errors are
those of the precision that ran, not the one asked for.

>>> tol = picodet_tolerance(8)
>>> tol(0, [1, 1600, 5], "float32"), tol(4, [1, 1600, 32], "float32")
((0.0001, 0.0), (0.001, 0.0))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from ..runtime.base import precision_shortfall
from .parity import (
    ENGINE_NAMES,
    ParityReport,
    compare,
    make_inputs,
    parity_error,
    run_many,
    tolerance_for,
)

SEEDS = (0, 1, 2, 3)
DIST_TOL = (1e-3, 0.0)
AGREEMENT_THRESHOLD = 0.3
#: a no-post-processing PicoDet: 4 score maps then 4 distance-logit maps
PICODET_OUTPUTS = 8

Tolerance = Callable[[int, list[int], str], tuple[float, float]]


def picodet_tolerance(outputs: int) -> Tolerance:
    """Tolerances by output position: distance logits of a no-post-processing PicoDet get
    ``DIST_TOL``, everything else :func:`~picozoo.convert.parity.tolerance_for`."""

    def tolerance(index: int, shape: list[int], dtype: str) -> tuple[float, float]:
        if outputs == PICODET_OUTPUTS and index >= outputs // 2 and dtype.startswith("float"):
            return DIST_TOL
        return tolerance_for(shape, dtype)

    return tolerance


@dataclass
class Reference:
    """ONNX Runtime's run of the source ONNX: resolved input shapes, feeds and outputs."""

    onnx_path: Path
    shapes: dict[str, list[int]]
    dtypes: dict[str, str]
    feeds: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    outputs: list[list[Any]] = field(default_factory=list)

    @property
    def output_shapes(self) -> dict[str, list[int]]:
        return {n: list(o.shape) for n, o in zip(self.names, self.outputs[0], strict=True)}

    @property
    def image_size(self) -> tuple[int, int] | None:
        return next(((s[2], s[3]) for s in self.shapes.values() if len(s) == 4), None)


def resolve_shapes(
    declared: dict[str, list[Any]],
    image_size: tuple[int, int] | None,
    overrides: dict[str, list[int]] | None = None,
) -> dict[str, list[int]]:
    """Fixed input shapes (:func:`~picozoo.convert.shapes.resolve_shape` at batch 1):
    ``overrides`` first, else the declared dims with a symbolic batch set to 1 and a symbolic
    image H/W set to ``image_size``.

    >>> resolve_shapes({"image": ["batch", 3, None, None], "scale_factor": ["batch", 2]},
    ...                (320, 288))
    {'image': [1, 3, 320, 288], 'scale_factor': [1, 2]}
    """
    from .shapes import resolve_shape

    return {
        name: resolve_shape(
            name,
            [d if isinstance(d, int) and d > 0 else -1 for d in dims],
            (overrides or {}).get(name),
            image_size,
            batch=1,
        )
        for name, dims in declared.items()
    }


def run_onnx_reference(
    onnx_path: Path,
    image_size: tuple[int, int] | None,
    overrides: dict[str, list[int]] | None = None,
) -> Reference:
    """Run the source ONNX on ONNX Runtime's reference kernels for every seed."""
    from ..runtime import load

    runtime = load("onnxruntime", onnx_path, reference=True)
    declared = {i.name: list(i.shape) for i in runtime.inputs()}
    ref = Reference(
        onnx_path,
        resolve_shapes(declared, image_size, overrides),
        {i.name: i.dtype for i in runtime.inputs()},
    )
    ref.feeds = [make_inputs(ref.shapes, ref.dtypes, seed=s) for s in SEEDS]
    ref.names, ref.outputs, _ = run_many("onnxruntime", onnx_path, ref.feeds)
    return ref


def check_engine_parity(
    engine: str, path: Path, ref: Reference, *, precision: str = "fp32"
) -> dict[str, Any]:
    """Run ``path`` on ``engine`` at ``precision`` on the reference's feeds; the provenance's
    ``parity`` section. Raises :class:`~picozoo.errors.ParityError` at fp32 when an output is
    out of tolerance.

    >>> check_engine_parity("ncnn", Path("model.ncnn.param"),
    ...                     run_onnx_reference(Path("model.onnx"), None))  # doctest: +SKIP
    {'passed': True, 'engine': 'ncnn', 'precision': 'fp32', ...}
    """
    names, outputs, settings = run_many(engine, path, ref.feeds, precision=precision)
    tolerance = picodet_tolerance(len(ref.names))
    sides = ("ONNX Runtime", ENGINE_NAMES[engine])
    per_seed = [
        compare((ref.names, r), (names, o), tolerance=tolerance, sides=sides)
        for r, o in zip(ref.outputs, outputs, strict=True)
    ]
    report = ParityReport(SEEDS[0], ref.shapes, _worst(per_seed))
    exact = precision == "fp32"
    if exact and not report.passed:
        raise parity_error(report, sides=(sides[1], sides[0]))
    ran = str(settings.get("executed_precision") or precision)
    shortfall = precision_shortfall(engine, precision, ran, str(settings.get("precision_note", "")))
    return {
        **report.to_dict(),
        "passed": report.passed if exact else "reported",
        "within_fp32_tolerance": report.passed,
        "reference": "onnxruntime",
        "engine": engine,
        "precision": precision,
        "executed_precision": ran,
        **({"precision_note": shortfall} if shortfall else {}),
        "seeds": list(SEEDS),
        "rule": "|engine - onnxruntime| <= atol + rtol * |onnxruntime|, worst over seeds",
        "engine_settings": settings,
        "agreement": detection_agreement(ref, outputs),
    }


def detection_agreement(ref: Reference, outputs: list[list[Any]]) -> dict[str, Any]:
    """Detections decoded from the reference's and the engine's outputs, matched per seed
    (``{"skipped": why}`` when the outputs are not a PicoDet's)."""
    import numpy as np

    from ..detect.agreement import agreement_on_images
    from ..detect.detector import Detector
    from ..paddle_dir import EVAL_NMS, InferConfig
    from ..runtime import load

    if ref.image_size is None:
        return {"skipped": "no NCHW image input"}
    detector = Detector(
        load("onnxruntime", ref.onnx_path), InferConfig(input_size=ref.image_size), EVAL_NMS
    )
    info = {"scale_factor": np.ones(2, "float32")}
    try:
        result = agreement_on_images(
            lambda i: detector.postprocess(ref.outputs[i], info),
            lambda i: detector.postprocess(outputs[i], info),
            list(range(len(outputs))),
            threshold=AGREEMENT_THRESHOLD,
        )
    except (ModelFileError, ValueError, IndexError) as e:
        return {"skipped": f"outputs are not a PicoDet's: {e}"}
    result["inputs"] = result.pop("images")
    result["nms"] = "upstream's evaluation settings (score 0.025, IoU 0.6)"
    return result


def _worst(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per output, the row of the seed with the largest error (not ok on any seed: not ok)."""
    worst = [dict(r) for r in per_seed[0]]
    for rows in per_seed[1:]:
        for i, row in enumerate(rows):
            if i >= len(worst):
                break
            ok = bool(worst[i].get("ok")) and bool(row.get("ok"))
            if row.get("max_abs", float("inf")) > worst[i].get("max_abs", float("inf")) or (
                not row.get("ok") and worst[i].get("ok")
            ):
                worst[i] = dict(row)
            worst[i]["ok"] = ok
    return worst
