"""The measured loop of one benchmark cell, run in a fresh process.

Usage: ``python -m picozoo.bench.worker [SPEC.json | -]`` with a JSON spec (on stdin by
default) like::

    {"path": "model.onnx", "engine": "onnxruntime", "threads": 1, "warmup": "auto",
     "min_iters": 100, "min_time_s": 2.0, "input_size": [416, 416], "seed": 0}

It prints one JSON object on stdout (anything the engines print goes to stderr): ``{"ok": true,
...timings...}`` or ``{"ok": false, "stage": ..., "error": ..., "hint": ...}``.

Methodology: the engine is configured explicitly (ONNX Runtime: intra-op threads = N,
inter-op threads = 1, sequential execution, all graph optimizations, CPU provider; Paddle
Inference: MKLDNN on, CPU math library threads = N), inputs are prepared before any timing
(seeded random data, shapes from the model), then load time, the first inference and the
warm-up iterations are recorded separately from the measured iterations, each timed with
``time.perf_counter_ns`` (garbage collection paused while measuring, as ``timeit`` does).
Measurement runs until both ``min_iters`` and ``min_time_s`` are met.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .stats import warm

#: Warm-up "auto": stop once stable, but after at most this many iterations / seconds.
AUTO_WARMUP_MAX_ITERS = 200
AUTO_WARMUP_MAX_S = 10.0
AUTO_WARMUP_WINDOW = 5
AUTO_WARMUP_TOLERANCE = 0.05
DEFAULT_SPATIAL = (320, 320)


class CellFailure(Exception):
    """A failure of this cell, at a named stage, with a hint for the user."""

    def __init__(self, stage: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.stage, self.message, self.hint = stage, message, hint


# ---------------------------------------------------------------------------------------------
# inputs


def resolve_shape(
    name: str, shape: list[Any], input_size: tuple[int, int] | None
) -> tuple[list[int], list[str]]:
    """Concrete shape for a model input; dynamic dims are filled in. Returns (shape, notes).

    >>> resolve_shape("image", [None, 3, "h", "w"], (416, 416))
    ([1, 3, 416, 416], [])
    >>> resolve_shape("scale_factor", [-1, 2], None)
    ([1, 2], [])
    """
    notes: list[str] = []
    dims: list[int] = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        elif i == 0:
            dims.append(1)
        elif len(shape) == 4 and i in (2, 3):
            if input_size is None:
                input_size = DEFAULT_SPATIAL
                notes.append(
                    f"input {name!r} has a dynamic size: used {input_size[0]}x{input_size[1]} "
                    "(set --input-size)"
                )
            dims.append(int(input_size[i - 2]))
        else:
            raise CellFailure(
                "inputs",
                f"cannot choose dimension {i} of input {name!r} (shape {shape})",
                "export the model with static shapes, or use --input-size HxW",
            )
    return dims, notes


def make_input(
    name: str, shape: list[int], dtype: str, image_hw: tuple[int, int], seed: int
) -> Any:
    """Seeded input data: ``scale_factor`` is ones, ``im_shape`` the image size, images random."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lname = name.lower()
    if "scale_factor" in lname:
        return np.ones(shape, dtype=dtype)
    if lname == "im_shape":
        return np.broadcast_to(np.asarray(image_hw, dtype=dtype), shape).copy()
    if np.issubdtype(np.dtype(dtype), np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(0, 2, size=shape).astype(dtype)


_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _image_hw(shapes: dict[str, list[int]]) -> tuple[int, int]:
    for s in shapes.values():
        if len(s) == 4:
            return s[2], s[3]
    return DEFAULT_SPATIAL


def _feeds(
    specs: list[tuple[str, list[Any], str]], input_size: tuple[int, int] | None, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    shapes: dict[str, list[int]] = {}
    notes: list[str] = []
    for name, shape, _ in specs:
        shapes[name], n = resolve_shape(name, shape, input_size)
        notes += n
    hw = _image_hw(shapes)
    feeds = {
        name: make_input(name, shapes[name], dt, hw, seed + i)
        for i, (name, _, dt) in enumerate(specs)
    }
    described = [{"name": n, "shape": shapes[n], "dtype": dt} for n, _, dt in specs]
    return feeds, described, notes


# ---------------------------------------------------------------------------------------------
# engines: each returns (run_once, settings, engine_version, inputs, notes); load is timed


def ort_session_options(threads: int) -> Any:
    """The ONNX Runtime session options picozoo benchmarks with (also used by benchmarks/)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return so


def load_onnxruntime(
    spec: dict[str, Any],
) -> tuple[Callable[[], Any], dict[str, Any], str, Any, Any]:
    try:
        import numpy  # noqa: F401
        import onnxruntime as ort
    except ImportError as e:
        raise CellFailure(
            "import", f"onnxruntime is not installed ({e})", "pip install 'picozoo[bench]'"
        ) from None
    path = Path(spec["path"])
    if path.is_dir():
        raise CellFailure(
            "load",
            f"{path} is a directory, onnxruntime needs an .onnx file",
            "bench a Paddle inference dir with --engine paddle",
        )
    threads = int(spec["threads"])
    so = ort_session_options(threads)
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise CellFailure(
            "load", f"onnxruntime cannot load {path.name}: {_short(e)}", "check the file"
        ) from None
    in_specs = [
        (i.name, list(i.shape), _ORT_DTYPES.get(i.type, "float32")) for i in sess.get_inputs()
    ]
    feeds, inputs, notes = _feeds(in_specs, _size(spec), int(spec.get("seed", 0)))
    run = sess.run

    def run_once() -> Any:
        return run(None, feeds)

    settings = {
        "intra_op_num_threads": so.intra_op_num_threads,
        "inter_op_num_threads": so.inter_op_num_threads,
        "execution_mode": str(so.execution_mode),
        "graph_optimization_level": str(so.graph_optimization_level),
        "providers": sess.get_providers(),
    }
    return run_once, settings, ort.__version__, inputs, notes


def paddle_model_files(path: Path) -> tuple[Path, Path]:
    """(program file, params file) of a Paddle inference dir (PIR model.json or model.pdmodel)."""
    if path.is_file():
        path = path.parent
    for prog in ("model.json", "model.pdmodel", "inference.json", "inference.pdmodel"):
        if (path / prog).is_file():
            params = path / (prog.rsplit(".", 1)[0] + ".pdiparams")
            if params.is_file():
                return path / prog, params
    raise CellFailure(
        "load",
        f"{path} is not a Paddle inference dir (no model.json/model.pdmodel + .pdiparams)",
        "bench .onnx files with --engine onnxruntime, or point at an unpacked inference tarball",
    )


def load_paddle(spec: dict[str, Any]) -> tuple[Callable[[], Any], dict[str, Any], str, Any, Any]:
    path = Path(spec["path"])
    prog, params = paddle_model_files(path)
    try:
        import paddle
        from paddle import inference
    except ImportError as e:
        raise CellFailure(
            "import", f"paddlepaddle is not installed ({e})", "pip install 'picozoo[convert]'"
        ) from None
    threads = int(spec["threads"])
    cfg = inference.Config(str(prog), str(params))
    cfg.disable_gpu()
    cfg.enable_mkldnn()
    cfg.set_mkldnn_cache_capacity(10)
    cfg.set_cpu_math_library_num_threads(threads)
    cfg.switch_ir_optim(True)
    cfg.disable_glog_info()
    try:
        predictor = inference.create_predictor(cfg)
    except Exception as e:  # paddle raises ValueError/RuntimeError/its own types
        raise CellFailure(
            "load", f"Paddle Inference cannot load {prog.name}: {_short(e)}", "check the model"
        ) from None
    names = predictor.get_input_names()
    shapes = spec.get("input_shapes") or {}
    in_specs = []
    for n in names:
        dt = _paddle_dtype(predictor.get_input_handle(n).type())
        if n in shapes:
            in_specs.append((n, list(shapes[n]), dt))
        elif "scale_factor" in n.lower() or n.lower() == "im_shape":
            in_specs.append((n, [-1, 2], dt))
        else:
            in_specs.append((n, [-1, 3, -1, -1], dt))
    feeds, inputs, notes = _feeds(in_specs, _size(spec), int(spec.get("seed", 0)))
    handles = [(predictor.get_input_handle(n), feeds[n]) for n in names]
    outs = [predictor.get_output_handle(n) for n in predictor.get_output_names()]
    run = predictor.run

    def run_once() -> Any:
        for h, x in handles:
            h.copy_from_cpu(x)
        run()
        return [o.copy_to_cpu() for o in outs]

    settings = {
        "mkldnn_enabled": bool(cfg.mkldnn_enabled()),
        "cpu_math_library_num_threads": int(cfg.cpu_math_library_num_threads()),
        "ir_optim": bool(cfg.ir_optim()),
        "model_file": prog.name,
        "timed": "copy_from_cpu + run + copy_to_cpu",
    }
    return run_once, settings, paddle.__version__, inputs, notes


def _paddle_dtype(t: Any) -> str:
    name = str(t).rsplit(".", 1)[-1].lower()
    return {
        "float32": "float32",
        "float16": "float16",
        "float64": "float64",
        "int64": "int64",
        "int32": "int32",
        "uint8": "uint8",
        "int8": "int8",
        "bool": "bool",
    }.get(name, "float32")


ENGINES: dict[
    str, Callable[[dict[str, Any]], tuple[Callable[[], Any], dict[str, Any], str, Any, Any]]
] = {
    "onnxruntime": load_onnxruntime,
    "paddle": load_paddle,
}


# ---------------------------------------------------------------------------------------------
# the measured loop


def measure(run_once: Callable[[], Any], min_iters: int, min_time_s: float) -> list[int]:
    """Time ``run_once`` until both ``min_iters`` and ``min_time_s`` are met; ns per iteration."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    deadline = clock() + int(min_time_s * 1e9)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while True:
            t0 = clock()
            run_once()
            t1 = clock()
            append(t1 - t0)
            if len(samples) >= min_iters and t1 >= deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def warm_up(run_once: Callable[[], Any], warmup: int | str) -> tuple[list[int], bool]:
    """Warm-up iterations (ns). ``"auto"``: until stable (see :func:`stats.warm`), capped."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    if warmup != "auto":
        for _ in range(int(warmup)):
            t0 = clock()
            run_once()
            samples.append(clock() - t0)
        return samples, True
    start = clock()
    while len(samples) < AUTO_WARMUP_MAX_ITERS and (clock() - start) < AUTO_WARMUP_MAX_S * 1e9:
        t0 = clock()
        run_once()
        samples.append(clock() - t0)
        if warm(
            [s / 1e6 for s in samples], window=AUTO_WARMUP_WINDOW, tolerance=AUTO_WARMUP_TOLERANCE
        ):
            return samples, True
    return samples, False


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one benchmark cell in this process and return the result dict."""
    engine = spec.get("engine", "onnxruntime")
    if engine not in ENGINES:
        raise CellFailure("spec", f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    if not Path(spec["path"]).exists():
        raise CellFailure("load", f"{spec['path']} does not exist", "check the path")
    t0 = time.perf_counter_ns()
    run_once, settings, version, inputs, notes = ENGINES[engine](spec)
    load_ns = time.perf_counter_ns() - t0
    t0 = time.perf_counter_ns()
    try:
        run_once()
    except Exception as e:  # engines raise many types
        raise CellFailure(
            "run", f"inference failed: {_short(e)}", "check the model inputs"
        ) from None
    first_ns = time.perf_counter_ns() - t0
    warm_ns, stable = warm_up(run_once, spec.get("warmup", "auto"))
    samples = measure(run_once, int(spec.get("min_iters", 100)), float(spec.get("min_time_s", 2.0)))
    return {
        "ok": True,
        "engine": engine,
        "engine_version": version,
        "threads": int(spec["threads"]),
        "engine_settings": settings,
        "inputs": inputs,
        "notes": notes,
        "load_ms": load_ns / 1e6,
        "first_inference_ms": first_ns / 1e6,
        "warmup": {"n": len(warm_ns), "stable": stable, "samples_ns": warm_ns},
        "samples_ns": samples,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _size(spec: dict[str, Any]) -> tuple[int, int] | None:
    s = spec.get("input_size")
    return (int(s[0]), int(s[1])) if s else None


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(e).__name__


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main(argv: list[str] | None = None) -> int:
    """Read the spec, run, print the JSON result on the real stdout."""
    args = sys.argv[1:] if argv is None else argv
    # Everything the engines print goes to stderr; only our JSON reaches the real stdout.
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        src = args[0] if args else "-"
        spec = json.loads(sys.stdin.read() if src == "-" else Path(src).read_text())
        result = run_spec(spec)
    except CellFailure as e:
        result = {"ok": False, "stage": e.stage, "error": e.message, "hint": e.hint}
    except Exception as e:  # report any crash as a failed cell, with the traceback on stderr
        traceback.print_exc()
        result = {
            "ok": False,
            "stage": "crash",
            "error": f"{type(e).__name__}: {_short(e)}",
            "hint": None,
        }
    real_stdout.write(json.dumps(result))
    real_stdout.write("\n")
    real_stdout.flush()
    return 0 if result.get("ok") else 3


if __name__ == "__main__":
    sys.exit(main())
