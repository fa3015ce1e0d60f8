"""Paddle -> ONNX: paddle2onnx, onnxsim, onnx.checker, parity check; cached with provenance.

>>> r = convert_paddle_dir_to_onnx(Path("picodet_dir"), Path("out"))  # doctest: +SKIP
>>> r.provenance["parity"]["passed"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import UsageError
from . import store, toolchain
from .errors import ConversionError, ParityError
from .result import ConversionResult
from .source import PaddleModel, find_paddle_model

ONNX_FILE = "model.onnx"
Progress = Callable[[str], None]
OnnxHook = Callable[[Any], None]


def onnx_options(
    *,
    opset: int,
    simplify: bool,
    input_shape: dict[str, list[int]] | None,
    dynamic_batch: bool,
) -> dict[str, Any]:
    """The normalized options of an ONNX conversion (part of the cache key and provenance)."""
    if not 7 <= opset <= 21:
        raise UsageError(f"--opset {opset} is out of range", hint="use an opset from 7 to 21")
    return {
        "target": "onnx",
        "opset": opset,
        "simplify": simplify,
        "input_shape": dict(sorted((input_shape or {}).items())) or None,
        "dynamic_batch": dynamic_batch,
        "parity_seed": 0,
        "pipeline": toolchain.PIPELINE_VERSION,
    }


def convert_paddle_dir_to_onnx(
    src: Path,
    out_dir: Path,
    *,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool = False,
    image_size: tuple[int, int] | None = None,
    onnx_hook: OnnxHook | None = None,
    progress: Progress | None = None,
) -> ConversionResult:
    """Convert the Paddle inference model in ``src`` into ``out_dir/model.onnx``.

    Writes ``model.onnx`` and ``provenance.json`` into ``out_dir`` only after the checks and the
    parity check passed. ``onnx_hook`` (for tests and debugging) is called with the final
    ``onnx.ModelProto`` right before the checks, e.g. to tamper with weights.
    """
    options = onnx_options(
        opset=opset, simplify=simplify, input_shape=input_shape, dynamic_batch=dynamic_batch
    )
    files = find_paddle_model(src)
    toolchain.check_onnx_toolchain(simplify)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir))
    try:
        prov = _convert(files, staging, options, image_size, onnx_hook, progress or _quiet)
        prov["source"] = _source_info(files, None)
        store.write_provenance(staging, prov)
        for name in (ONNX_FILE, store.PROVENANCE):
            (staging / name).replace(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ConversionResult(out_dir / ONNX_FILE, prov, cached=False)


def convert_to_cache(
    src: Path,
    *,
    cache_dir: Path,
    label: str,
    opset: int = 11,
    simplify: bool = True,
    input_shape: dict[str, list[int]] | None = None,
    dynamic_batch: bool = False,
    image_size: tuple[int, int] | None = None,
    source_meta: dict[str, Any] | None = None,
    onnx_hook: OnnxHook | None = None,
    progress: Progress | None = None,
) -> ConversionResult:
    """Convert ``src`` into ``<cache>/converted/<label>/<key>/`` unless it is already there.

    A cache hit reads only ``provenance.json`` (no paddle/onnx import): ``cached=True``.
    """
    say = progress or _quiet
    options = onnx_options(
        opset=opset, simplify=simplify, input_shape=input_shape, dynamic_batch=dynamic_batch
    )
    files = find_paddle_model(src)
    shas = files.sha256()
    tools = toolchain.tool_versions()
    key = store.cache_key(shas["combined"], tools, options)
    final = store.output_dir(cache_dir, label, key)
    hit = _cache_hit(final)
    if hit is not None:
        store.record_in_lock(cache_dir, label, key, final / ONNX_FILE, hit["output"]["sha256"])
        return ConversionResult(final / ONNX_FILE, hit, cached=True)
    toolchain.check_onnx_toolchain(simplify)
    staging = store.staging_dir(cache_dir, label)
    try:
        prov = _convert(files, staging, options, image_size, onnx_hook, say)
        prov.update(key=key, label=label, source=_source_info(files, source_meta, shas))
        store.write_provenance(staging, prov)
        store.install(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    store.record_in_lock(cache_dir, label, key, final / ONNX_FILE, prov["output"]["sha256"])
    return ConversionResult(final / ONNX_FILE, prov, cached=False)


def local_label(src: Path) -> str:
    """Cache label of a plain directory: ``local-<directory name>``.

    >>> local_label(Path("/models/my_picodet/"))
    'local-my_picodet'
    """
    p = Path(src).resolve()
    name = p.parent.name if p.is_file() else p.name
    return "local-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model")


def _cache_hit(final: Path) -> dict[str, Any] | None:
    prov = store.read_provenance(final)
    onnx_file = final / ONNX_FILE
    if prov is None or not onnx_file.is_file():
        return None
    if prov.get("output", {}).get("size") != onnx_file.stat().st_size:
        return None
    return prov


def _convert(
    files: PaddleModel,
    staging: Path,
    options: dict[str, Any],
    image_size: tuple[int, int] | None,
    onnx_hook: OnnxHook | None,
    say: Progress,
) -> dict[str, Any]:
    """Run every step into ``staging``; return the provenance (without ``source``)."""
    import onnx

    from .p2o import paddle_to_onnx
    from .parity import ParityReport, compare, make_inputs, run_onnx, run_paddle
    from .shapes import fix_onnx_inputs, onnx_input_dims, resolve_shape
    from .simplify import check_model, simplify_model

    timings: dict[str, float] = {}
    t = time.perf_counter()
    say(f"paddle2onnx {files.model_file} (opset {options['opset']}, optimizer off)")
    model = onnx.load_from_string(paddle_to_onnx(files, opset=options["opset"]))
    timings["paddle2onnx"] = _lap(t)

    declared = onnx_input_dims(model)
    dtypes = {i.name: _onnx_dtype(i) for i in model.graph.input if i.name in declared}
    overrides = options["input_shape"] or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise UsageError(
            f"--input-shape names unknown input(s) {', '.join(unknown)}",
            hint=f"the model's inputs are: {', '.join(declared)}",
        )
    size = files.target_size() or image_size
    shapes = {n: resolve_shape(n, d, overrides.get(n), size, batch=1) for n, d in declared.items()}
    dynamic = options["dynamic_batch"]
    if dynamic:
        fixed0 = [n for n, d in declared.items() if d and d[0] > 0]
        if fixed0:
            raise UsageError(
                f"--dynamic-batch: input(s) {', '.join(fixed0)} have a fixed batch size",
                hint="drop --dynamic-batch; this model was exported with a fixed batch",
            )
    fix_onnx_inputs(model, shapes, dynamic_batch=dynamic)

    t = time.perf_counter()
    if options["simplify"]:
        say("onnxsim")
        model = simplify_model(model)
    timings["onnxsim"] = _lap(t)
    if onnx_hook is not None:
        onnx_hook(model)
    check_model(model)
    onnx_path = staging / ONNX_FILE
    onnx.save(model, str(onnx_path))

    t = time.perf_counter()
    run_shapes = {n: ([2, *s[1:]] if dynamic else s) for n, s in shapes.items()}
    say("parity check: Paddle Inference vs ONNX Runtime, seeded input " + _fmt_shapes(run_shapes))
    feeds = make_inputs(run_shapes, dtypes, seed=options["parity_seed"])
    report = ParityReport(seed=options["parity_seed"], inputs=run_shapes)
    report.outputs = compare(run_paddle(files, feeds), run_onnx(onnx_path, feeds))
    timings["parity"] = _lap(t)
    if not report.passed:
        raise _parity_error(report)
    worst = max((o.get("max_abs", 0.0) for o in report.outputs), default=0.0)
    say(f"parity ok: {len(report.outputs)} outputs, max abs err {worst:.3g}")

    opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset_used != options["opset"]:
        say(f"note: paddle2onnx raised the opset to {opset_used} (an op needs it)")
    return {
        "schema": 1,
        "target": "onnx",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tools": toolchain.tool_versions(),
        "options": options,
        "output": {
            "file": ONNX_FILE,
            "sha256": sha256_file(onnx_path),
            "size": onnx_path.stat().st_size,
            "opset": opset_used,
            "inputs": {i.name: _dims(i) for i in model.graph.input if i.name in declared},
            "outputs": {o.name: _dims(o) for o in model.graph.output},
        },
        "parity": report.to_dict(),
        "seconds": timings,
    }


def _parity_error(report: Any) -> ParityError:
    parts = []
    for f in report.failures:
        what = f"output #{f.get('index', '?')} {f['name']!r}"
        if f.get("paddle_name") and f["paddle_name"] != f["name"]:
            what += f" (Paddle {f['paddle_name']!r})"
        detail = f.get("problem", "")
        if "max_rel" in f:
            detail += f", max rel err {f['max_rel']:.3g}"
        parts.append(f"{what}: {detail}")
    return ParityError(
        "parity check failed, ONNX Runtime and Paddle Inference disagree: " + "; ".join(parts),
        hint="the converted model was discarded (not cached); report it with the tool versions",
        failures=report.failures,
    )


def _source_info(
    files: PaddleModel, meta: dict[str, Any] | None, shas: dict[str, str] | None = None
) -> dict[str, Any]:
    shas = shas or files.sha256()
    info: dict[str, Any] = dict(meta or {})
    info.update(
        directory=str(files.directory),
        model_file=files.model_file.name,
        params_file=files.params_file.name if files.params_file else None,
        format=files.format,
        model_sha256=shas["model"],
        params_sha256=shas["params"] or None,
        sha256=shas["combined"],
    )
    return info


def _onnx_dtype(value_info: Any) -> str:
    import onnx

    elem = value_info.type.tensor_type.elem_type
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem)) if elem else "float32"


def _dims(value_info: Any) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def _fmt_shapes(shapes: dict[str, list[int]]) -> str:
    return ", ".join(f"{n}={'x'.join(map(str, s))}" for n, s in shapes.items())


def _lap(t: float) -> float:
    return round(time.perf_counter() - t, 3)


def _quiet(message: str) -> None:
    pass


__all__ = ["ConversionError", "convert_paddle_dir_to_onnx", "convert_to_cache", "local_label"]
