"""The x86 parity check of a Paddle -> Paddle-Lite conversion.

There is no ARM CPU here, and an ARM ``.nb`` "runs" on x86 returning garbage. So
``convert --to lite`` also builds an x86 ``.nb`` (``--valid_targets=x86``) from the same model
with the same optimizer, runs it in the managed tool environment's Python
(:mod:`picozoo.runtime.lite`) and compares it with Paddle Inference on the source model, as the
engine conversions are compared with ONNX Runtime (:mod:`.engine_parity`): seeded inputs 0..3
(:func:`~picozoo.convert.parity.make_inputs`), every output within the same tolerances
(scores 1e-4; a no-post-processing PicoDet's distance logits 1e-3; boxes 1e-3 + 1e-4 x |ref|),
worst over the seeds; then detections on three seeded synthetic images matched like the ONNX
conversion's (:func:`~picozoo.convert.onnx_agreement.synthetic_images`, scores >= 0.3). A
mismatch is a :class:`~picozoo.errors.ParityError` (exit 10): nothing is cached.

What it proves: the graph ``paddle_lite_opt`` optimized (op fusions, the passes, the weights
it wrote) computes what the Paddle model computes. It does not prove ARM FP16 arithmetic: the
x86 kernels are fp32 (:data:`PROVES` is written in the provenance and printed).

>>> PROVES.split(";")[0]
'the optimized graph (Paddle-Lite x86 kernels, fp32) against Paddle Inference'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PicozooError
from ..paddle_dir import EVAL_NMS, PaddleModel
from .engine_parity import SEEDS, _worst, picodet_tolerance, resolve_shapes
from .parity import ParityReport, compare, make_inputs, parity_error, run_many

X86_NB = "model.x86.nb"
PROVES = (
    "the optimized graph (Paddle-Lite x86 kernels, fp32) against Paddle Inference; "
    "not ARM FP16 arithmetic (no ARM CPU here)"
)
SIDES = ("Paddle Inference", "Paddle-Lite x86")


def check_lite_parity(files: PaddleModel, x86_nb: Path, python: Path) -> dict[str, Any]:
    """Run ``x86_nb`` (in ``python``, the tool environment's) and the Paddle model on seeded
    inputs; the provenance's ``parity`` section. Raises
    :class:`~picozoo.errors.ParityError` when an output is out of tolerance."""
    from ..naive_buffer import read_nb_file
    from ..runtime.lite import open_model

    nb = read_nb_file(x86_nb)
    shapes = resolve_shapes(
        {n: list(s) for n, s in nb.input_shapes().items()}, files.config().input_size
    )
    dtypes = {n: "float32" for n in shapes}
    feeds = [make_inputs(shapes, dtypes, seed=s) for s in SEEDS]
    ref_names, ref_outputs, _ = run_many("paddle", files.directory, feeds)
    lite = open_model(x86_nb, threads=1, precision="fp32", reference=True, python=python)
    try:
        outputs = [lite.run(f) for f in feeds]
        names = lite.output_names()
        tolerance = picodet_tolerance(len(ref_names))
        per_seed = [
            compare((ref_names, r), (names, o), tolerance=tolerance, sides=SIDES)
            for r, o in zip(ref_outputs, outputs, strict=True)
        ]
        report = ParityReport(SEEDS[0], shapes, _worst(per_seed))
        if not report.passed:
            raise parity_error(report, sides=(SIDES[1], SIDES[0]))
        agreement = _agreement(files, lite)
        settings = dict(lite.settings)
        version = lite.version
    finally:
        lite.close()
    return {
        **report.to_dict(),
        "reference": "paddle",
        "engine": "lite",
        "engine_version": version,
        "precision": "fp32",
        "executed_precision": "fp32",
        "seeds": list(SEEDS),
        "rule": "|lite x86 - paddle| <= atol + rtol * |paddle|, worst over seeds",
        "engine_settings": settings,
        "agreement": agreement,
        "file": X86_NB,
        "proves": PROVES,
    }


def _agreement(files: PaddleModel, lite: Any) -> dict[str, Any]:
    """Detections of Paddle Inference and the x86 ``.nb`` on three seeded synthetic images."""
    from ..detect.agreement import agreement_on_images
    from ..detect.detector import Detector
    from ..runtime import load
    from .onnx_agreement import THRESHOLD, synthetic_images

    cfg = files.config()
    if cfg.input_size is None:
        return {"skipped": "no input size in infer_cfg.yml"}
    try:
        paddle = Detector(load("paddle", files.directory, reference=True), cfg, EVAL_NMS)
        ours = Detector(lite, cfg, EVAL_NMS)
        result = agreement_on_images(
            lambda im: paddle.detect(im)[0],
            lambda im: ours.detect(im)[0],
            synthetic_images(),
            threshold=THRESHOLD,
        )
    except (PicozooError, ValueError, IndexError, KeyError) as e:
        return {"skipped": f"cannot decode detections: {e}"}
    result["images"] = "3 seeded synthetic 480x640 images"
    return result


def parity_line(parity: Any) -> str | None:
    """One stderr line: the x86 parity figure, and what it proves (None: no x86 check).

    >>> from picozoo.provenance import Parity
    >>> parity_line(Parity.from_json({"engine": "lite", "passed": True, "seeds": [0, 1, 2, 3],
    ...     "outputs": [{"name": "s", "max_abs": 3.8e-06, "ok": True}]}))  # doctest: +ELLIPSIS
    'x86 parity: Paddle-Lite x86 .nb vs Paddle Inference, 4 seeded inputs, 1 outputs, max abs \
err 3.8e-06: ok; this proves the optimized graph ...'
    """
    if parity is None or parity.engine != "lite":
        return None
    seeds = len(parity.seeds or [0])
    line = (
        f"x86 parity: Paddle-Lite x86 .nb vs Paddle Inference, {seeds} seeded inputs, "
        f"{len(parity.outputs)} outputs, max abs err {parity.max_abs:.2g}: "
        + ("ok" if parity.passed is True else str(parity.passed))
    )
    agreement = parity.agreement
    if agreement is not None and agreement.skipped is None and agreement.detections is not None:
        line += (
            f"; detections agree: {agreement.matched} of {agreement.detections}"
            if agreement.detections
            else "; no detection scored >= 0.3 on the synthetic images (none to compare)"
        )
    return line + "; this proves the optimized graph on x86 (fp32), not ARM FP16 arithmetic"
