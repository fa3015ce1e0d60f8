"""The parity check: one fixed, seeded input through Paddle Inference and ONNX Runtime.

Every output is compared element by element. An output passes when
``|onnx - paddle| <= atol + rtol * |paddle|`` everywhere, with

* score-like outputs (anything else): ``atol = 1e-4``, ``rtol = 0`` -- fp32 noise is ~1e-6;
* box-like outputs (last dim 4, or 6 = NMS rows ``[label, score, x1, y1, x2, y2]``):
  ``atol = 1e-3``, ``rtol = 1e-4`` -- coordinates are in pixels (hundreds), where fp32 carries
  ~7 significant digits, so 1e-4 relative plus a milli-pixel floor;
* integer outputs (e.g. NMS box counts): exact.

Rows of NMS outputs (2-D, last dim 6) are compared after sorting both sides by
(label, score, x1, y1, x2, y2): the two runtimes may list equal-score boxes in another order.

``max_rel`` is reported over elements with ``|paddle| >= 1e-3`` (relative error of values near
zero is meaningless).

>>> tolerance_for([1, 3598, 4], "float32")
(0.001, 0.0001)
>>> tolerance_for([1, 80, 3598], "float32")
(0.0001, 0.0)
>>> import numpy as np
>>> rows = np.array([[1, 0.9, 0, 0, 5, 5], [0, 0.8, 1, 1, 4, 4]], "float32")
>>> [r["ok"] for r in compare((["nms"], [rows]), (["nms"], [rows[::-1]]))]
[True]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..capture import captured_output
from ..errors import ConversionError, MissingDependencyError, ParityError
from ..paddle_dir import PaddleModel

T = TypeVar("T")
SEED = 0
SCORE_TOL = (1e-4, 0.0)
BOX_TOL = (1e-3, 1e-4)
REL_FLOOR = 1e-3


@dataclass
class ParityReport:
    """Per-output comparison rows and the inputs used."""

    seed: int
    inputs: dict[str, list[int]]
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o["ok"] for o in self.outputs)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [o for o in self.outputs if not o["ok"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "seed": self.seed,
            "inputs": self.inputs,
            "rule": "|onnx - paddle| <= atol + rtol * |paddle|",
            "outputs": self.outputs,
        }


def tolerance_for(shape: list[int], dtype: str) -> tuple[float, float]:
    """``(atol, rtol)`` for an output of this shape and dtype (see the module docstring)."""
    if not dtype.startswith("float"):
        return (0.0, 0.0)
    if len(shape) >= 2 and shape[-1] in (4, 6):
        return BOX_TOL
    return SCORE_TOL


def make_inputs(shapes: dict[str, list[int]], dtypes: dict[str, str], seed: int = SEED) -> dict:
    """Deterministic inputs: ``image``-like N(0, 1), ``scale_factor`` U(0.5, 2), ``im_shape``
    the image size, other floats U(0, 1), integers 1.

    >>> feeds = make_inputs({"image": [1, 3, 8, 8], "im_shape": [1, 2]}, {})
    >>> feeds["image"].shape, feeds["im_shape"].tolist()
    ((1, 3, 8, 8), [[8.0, 8.0]])
    """
    import numpy as np

    from ..errors import UsageError
    from ..runtime.base import check_input_shapes

    check_input_shapes(shapes, "parity check", error=UsageError)  # e.g. a huge --input-shape
    rng = np.random.default_rng(seed)
    feeds: dict[str, Any] = {}
    image_hw = next((s[2:4] for s in shapes.values() if len(s) == 4), [1, 1])
    for name in sorted(shapes):
        shape, dtype = shapes[name], dtypes.get(name, "float32")
        if not dtype.startswith("float"):
            feeds[name] = np.ones(shape, dtype=dtype)
        elif name == "im_shape" and shape[-1] == 2:
            feeds[name] = np.broadcast_to(np.array(image_hw, dtype), shape).copy()
        elif name == "scale_factor":
            feeds[name] = rng.uniform(0.5, 2.0, shape).astype(dtype)
        elif len(shape) == 4:
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = rng.uniform(0.0, 1.0, shape).astype(dtype)
    return feeds


def check_parity(
    files: PaddleModel,
    onnx_path: Path,
    shapes: dict[str, list[int]],
    dtypes: dict[str, str],
    *,
    seed: int = SEED,
) -> ParityReport:
    """Run the Paddle model and the converted ONNX model on the same seeded inputs, both on
    their engine's reference kernels (:func:`picozoo.runtime.load` with ``reference=True``),
    and compare every output. Raises :class:`ParityError` when any output disagrees.

    >>> check_parity(find_paddle_model(Path("m")), Path("model.onnx"),
    ...              {"image": [1, 3, 64, 64]}, {})  # doctest: +SKIP
    ParityReport(seed=0, inputs={'image': [1, 3, 64, 64]}, outputs=[{...'ok': True...}, ...])
    """
    feeds = make_inputs(shapes, dtypes, seed=seed)
    report = ParityReport(seed=seed, inputs=shapes)
    paddle_out = run_reference("paddle", files.model_file, feeds)
    report.outputs = compare(paddle_out, run_reference("onnxruntime", onnx_path, feeds))
    if not report.passed:
        raise parity_error(report)
    return report


def run_reference(
    engine: str, path: Path, feeds: dict[str, Any], *, precision: str = "fp32"
) -> tuple[list[str], list[Any]]:
    """``(output names, outputs)`` of ``path`` run by ``engine``'s reference kernels on
    ``feeds`` (inputs the model does not take are left out). At a reduced ``precision`` the
    engine runs as it is deployed (its reference mode would force fp32).

    >>> run_reference("onnxruntime", Path("model.onnx"), feeds)  # doctest: +SKIP
    (['fetch_name_0', 'fetch_name_1'], [array(...), array(...)])
    """
    names, results, _settings = run_many(engine, path, [feeds], precision=precision)
    return names, results[0]


def run_many(
    engine: str, path: Path, feeds: list[dict[str, Any]], *, precision: str = "fp32"
) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    """:func:`run_reference` on several feeds, the model loaded once: ``(output names,
    outputs of each feed, the engine's settings)``."""
    runtime = _open_reference(engine, path, precision)
    names = input_names(runtime)
    missing = sorted({n for f in feeds for n in names if n not in f})
    if missing:
        raise ConversionError(
            f"{ENGINE_NAMES[engine]}: model input(s) {missing} have no parity input"
        )
    results = [
        list(_engine_call(engine, path, functools.partial(runtime.run, {n: f[n] for n in names})))
        for f in feeds
    ]
    return runtime.output_names(), results, dict(runtime.settings)


def feed_order(engine: str, path: Path) -> list[str]:
    """The input names of the model at ``path`` in ``engine``'s feed order (Paddle: the order
    of the model's feed ops, which is the order users feed inputs in).

    >>> feed_order("paddle", Path("picodet_dir"))  # doctest: +SKIP
    ['image', 'scale_factor']
    """
    return input_names(_open_reference(engine, path))


def input_names(runtime: Any) -> list[str]:
    """The input names of a loaded :class:`~picozoo.runtime.Runtime`, in its order."""
    return [i.name for i in runtime.inputs()]


ENGINE_NAMES = {
    "paddle": "Paddle Inference",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
    "mnn": "MNN",
    "ncnn": "NCNN",
    "lite": "Paddle-Lite",
}


def _open_reference(engine: str, path: Path, precision: str = "fp32") -> Any:
    from ..runtime import load

    reference = precision == "fp32"
    return _engine_call(
        engine, path, lambda: load(engine, path, precision=precision, reference=reference)
    )


def _engine_call(engine: str, path: Path, step: Callable[[], T]) -> T:
    """Run ``step`` (load or run a model) with the engine's own logs captured; whatever the
    engine raises (but a missing package) becomes one :class:`ConversionError`."""
    with captured_output():  # engines print their own logs on stdout
        try:
            return step()
        except MissingDependencyError:
            raise
        except Exception as e:  # EngineError, or whatever the engine raises
            error = e
    raise ConversionError(
        f"{ENGINE_NAMES[engine]} could not run {path}: {error}".splitlines()[0][:400],
        hint="the parity check runs both models on CPU; the converted model was not kept",
    ) from error


def compare(
    paddle_out: tuple[list[str], list[Any]],
    onnx_out: tuple[list[str], list[Any]],
    *,
    tolerance: Callable[[int, list[int], str], tuple[float, float]] | None = None,
    sides: tuple[str, str] = ("Paddle", "ONNX"),
) -> list[dict[str, Any]]:
    """One row per output (matched by position): shapes, max abs/rel error, tolerance, ok.
    ``paddle_out`` is the reference side; ``tolerance(index, shape, dtype)`` overrides
    :func:`tolerance_for`; ``sides`` names the two sides in problems.

    >>> import numpy as np
    >>> compare((["p"], [np.zeros(3, "int32")]), (["o"], [np.ones(3, "int32")]))[0]["ok"]
    False
    """
    import numpy as np

    p_names, p_vals = paddle_out
    o_names, o_vals = onnx_out
    rows: list[dict[str, Any]] = []
    if len(p_vals) != len(o_vals):
        return [
            {
                "name": "(outputs)",
                "paddle_name": None,
                "ok": False,
                "problem": f"{sides[0]} has {len(p_vals)} outputs, {sides[1]} has {len(o_vals)}",
            }
        ]
    for i, (pn, on, ref, got) in enumerate(zip(p_names, o_names, p_vals, o_vals, strict=True)):
        ref, got = np.asarray(ref), np.asarray(got)
        row: dict[str, Any] = {
            "index": i,
            "name": on,
            "paddle_name": pn,
            "shape": list(ref.shape),
            "dtype": str(ref.dtype),
        }
        atol, rtol = (
            tolerance(i, list(ref.shape), str(ref.dtype))
            if tolerance
            else tolerance_for(list(ref.shape), str(ref.dtype))
        )
        row.update(atol=atol, rtol=rtol)
        if ref.shape != got.shape:
            row.update(
                ok=False, problem=f"shape {list(got.shape)} != {sides[0]}'s {list(ref.shape)}"
            )
        elif ref.size == 0:
            row.update(max_abs=0.0, max_rel=0.0, ok=True)
        else:
            r, g = ref.astype(np.float64), got.astype(np.float64)
            if r.ndim == 2 and r.shape[1] == 6:
                r = r[np.lexsort(r.T[::-1])]
                g = g[np.lexsort(g.T[::-1])]
            diff = np.abs(g - r)
            big = np.abs(r) >= REL_FLOOR
            max_rel = float((diff[big] / np.abs(r[big])).max()) if big.any() else 0.0
            finite = bool(np.isfinite(g).all() == np.isfinite(r).all())
            within = bool((diff <= atol + rtol * np.abs(r)).all()) and finite
            row.update(max_abs=float(np.nan_to_num(diff, nan=np.inf).max()), max_rel=max_rel)
            row["ok"] = within
            if not within:
                row["problem"] = (
                    f"max abs err {row['max_abs']:.3g} > tolerance {atol:g} + {rtol:g}*|ref|"
                )
        rows.append(row)
    return rows


def parity_error(
    report: ParityReport, sides: tuple[str, str] = ("ONNX Runtime", "Paddle Inference")
) -> ParityError:
    """One error naming every failed output and its worst error (``sides``: the converted
    model's engine, then the reference's).

    >>> r = ParityReport(0, {}, [{"index": 1, "name": "boxes", "ok": False, "problem": "shape"}])
    >>> str(parity_error(r)).split(": ", 1)[1][:26]
    "output #1 'boxes': shape ("
    """
    parts = []
    for f in report.failures:
        what = f"output #{f.get('index', '?')} {f['name']!r}"
        if f.get("paddle_name") and f["paddle_name"] != f["name"]:
            what += f" ({sides[1]} {f['paddle_name']!r})"
        detail = f.get("problem", "")
        if "max_rel" in f:
            detail += f", max rel err {f['max_rel']:.3g}"
        parts.append(f"{what}: {detail}")
    return ParityError(
        f"parity check failed, {sides[0]} and {sides[1]} disagree: " + "; ".join(parts),
        hint="the converted model was discarded (not cached); report it with the tool versions",
        failures=report.failures,
    )
