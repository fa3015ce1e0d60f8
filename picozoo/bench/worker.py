"""The measured loop of one benchmark cell, run in a fresh process.

Usage: ``python -m picozoo.bench.worker [SPEC.json | -]`` with a
:class:`~picozoo.bench.records.BenchSpec` as JSON (on stdin by default) like::

    {"path": "model.onnx", "engine": "onnxruntime", "threads": 1, "warmup": "auto",
     "min_iters": 100, "min_time_s": 2.0, "input_size": [416, 416], "seed": 0,
     "precision": "fp32"}

It prints one JSON line on stdout (anything the engines print goes to stderr): ``{"ok": true,
...measurement...}`` or ``{"ok": false, "stage": ..., "error": ..., "hint": ...}``.

Methodology: the model is loaded through :func:`picozoo.runtime.load` with the engine's speed
settings at the spec's precision (ONNX Runtime: intra-op threads = N, inter-op threads = 1,
sequential execution, all graph optimizations, CPU provider; Paddle Inference: oneDNN on, CPU
math library threads = N; OpenVINO, MNN, ncnn: N threads, see their adapters); an engine that
cannot be imported is a failed cell (stage ``import``) with the extra that installs it;
the precision the engine really computes in is read back after loading (see
:attr:`picozoo.runtime.Runtime.executed_precision`) and recorded as ``executed_precision``: a
precision this CPU cannot run (the engine would quietly compute in another) is not measured,
the cell is skipped (stage ``skipped``) naming what the engine would run and why; inputs are
prepared before any timing (seeded random data, shapes from the model; or, with a
``feeds`` file, the arrays ``bench --image`` made from a real image), then load
time, the first inference and the warm-up iterations are recorded separately from the measured
iterations, each timed with ``time.perf_counter_ns`` (garbage collection paused while
measuring, as ``timeit`` does). Measurement runs until both ``min_iters`` and ``min_time_s``
are met.

Memory: ``peak_rss_mb`` is this worker's own peak resident set (``VmHWM`` of
``/proc/self/status``, read after the measured iterations: interpreter, engine and model), and
``rss_before_load_mb`` its resident set just before the model is loaded. ``getrusage``'s
``ru_maxrss`` is not used on Linux: it carries over the peak of the process that started the
worker (a parent that had just converted a model reported 500+ MB for an 87 MB worker).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import (
    MissingDependencyError,
    ModelFileError,
    PicozooError,
    PrecisionUnavailableError,
    UsageError,
)
from ..runtime import load
from ..runtime.base import (
    ENGINES,
    Runtime,
    TensorInfo,
    refuse_unavailable_precision,
    short_error,
)
from .fields import FieldError
from .records import (
    SKIPPED,
    BenchSpec,
    CellResult,
    Failure,
    Measurement,
    Warmup,
    result_to_json,
)
from .stats import stability, summarize, warm

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
        self.failure = Failure(stage, message, hint)


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
    """Seeded input data: ``scale_factor`` is ones, ``im_shape`` the image size, images random.

    >>> make_input("scale_factor", [1, 2], "float32", (416, 416), seed=0).tolist()
    [[1.0, 1.0]]
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    lname = name.lower()
    if "scale_factor" in lname:
        return np.ones(shape, dtype=dtype)
    if lname == "im_shape":
        return np.broadcast_to(np.asarray(image_hw, dtype=dtype), shape).copy()
    if np.issubdtype(np.dtype(dtype), np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, 2, size=shape).astype(dtype)


def make_feeds(
    inputs: list[TensorInfo],
    input_size: tuple[int, int] | None,
    seed: int,
    given: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], tuple[TensorInfo, ...], list[str]]:
    """Feeds for a model's ``inputs``: (name -> array, what is fed, notes on chosen sizes).
    ``given``: arrays by input name (a pre-processed image, see :func:`given_feeds`), fed
    as they are (in the input's dtype) where the model's fixed dimensions allow; the other
    inputs get seeded data.

    >>> feeds, fed, notes = make_feeds([TensorInfo("image", ["N", 3, 8, 8], "float32")], None, 0)
    >>> fed[0].shape, notes
    ([1, 3, 8, 8], [])
    """
    import numpy as np

    given = given or {}
    fed: list[TensorInfo] = []
    notes: list[str] = []
    for i in inputs:
        if i.name in given:
            shape = [int(d) for d in np.shape(given[i.name])]
            fixed = [d if isinstance(d, int) and d > 0 else None for d in i.shape]
            if len(shape) != len(fixed) or any(
                f not in (None, d) for f, d in zip(fixed, shape, strict=True)
            ):
                raise CellFailure(
                    "inputs",
                    f"the pre-processed image for input {i.name!r} has shape {shape}, the "
                    f"model takes {i.shape}",
                    "the model's infer_cfg.yml does not describe this model's input",
                )
        else:
            shape, n = resolve_shape(i.name, i.shape, input_size)
            notes += n
        fed.append(TensorInfo(i.name, shape, i.dtype))
    image_hw = next(((s[2], s[3]) for s in (f.shape for f in fed) if len(s) == 4), DEFAULT_SPATIAL)
    feeds = {
        f.name: np.ascontiguousarray(given[f.name], dtype=f.dtype)
        if f.name in given
        else make_input(f.name, f.shape, f.dtype, image_hw, seed + k)
        for k, f in enumerate(fed)
    }
    return feeds, tuple(fed), notes


def given_feeds(path: Path | None) -> dict[str, Any]:
    """The arrays of a spec's ``feeds`` file (``.npz``, no pickles), by name; {} for None."""
    if path is None:
        return {}
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise CellFailure("inputs", f"cannot read the inputs {path}: {e}") from e


# ---------------------------------------------------------------------------------------------
# the measured loop


def measure(run_once: Callable[[], Any], min_iters: int, min_time_s: float) -> list[int]:
    """Time ``run_once`` until both ``min_iters`` and ``min_time_s`` are met; ns per iteration.

    >>> len(measure(lambda: None, min_iters=3, min_time_s=0))
    3
    """
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
    """Warm-up iterations (ns), and whether they settled. ``"auto"``: until stable (see
    :func:`~picozoo.bench.stats.warm`), capped at 200 iterations / 10 s.

    >>> warm_up(lambda: None, 3)[0].__len__()
    3
    """
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


def _stage(e: PicozooError) -> str:
    """The stage a runtime-layer error is reported at."""
    if isinstance(e, MissingDependencyError):
        return "import"
    if isinstance(e, UsageError) and not isinstance(e, ModelFileError):
        return "spec"
    return "load"


def _import_failure(engine: str, e: ImportError) -> tuple[str, str]:
    """(error, hint) of an engine whose import failed outside picozoo's own ``require``.

    >>> _import_failure("mnn", ModuleNotFoundError("No module named 'MNN'", name="MNN"))[0]
    "MNN is not installed; this needs the [mnn] extra: pip install 'picozoo[mnn]'"
    >>> _import_failure("ncnn", ModuleNotFoundError("x", name="picozoo.runtime.ncnn"))
    ('this picozoo has no ncnn adapter (x)', "upgrade picozoo: pip install -U 'picozoo[ncnn]'")
    """
    extra = ENGINES.get(engine, ("", engine))[1]
    if (e.name or "").startswith("picozoo."):
        return (
            f"this picozoo has no {engine} adapter ({short_error(e)})",
            f"upgrade picozoo: pip install -U 'picozoo[{extra}]'",
        )
    missing = MissingDependencyError((e.name or engine).split(".")[0], extra)
    return missing.message, f"or bench another engine (--engine {', '.join(ENGINES)})"


def run_spec(spec: BenchSpec) -> Measurement:
    """Run one benchmark cell in this process; raises :class:`CellFailure`.

    >>> spec = BenchSpec(Path("model.onnx"), "onnxruntime", min_time_s=0.5)
    >>> run_spec(spec).stats.median_ms  # doctest: +SKIP
    0.42
    """
    rss_before_load = _rss_mb("VmRSS")
    t0 = time.perf_counter_ns()
    try:
        runtime = load(spec.engine, spec.path, threads=spec.threads, precision=spec.precision)
    except PicozooError as e:  # missing engine, unusable file, engine cannot load it
        raise CellFailure(_stage(e), e.message, e.hint) from e
    except ImportError as e:  # an engine (or its adapter) that cannot be imported
        raise CellFailure("import", *_import_failure(spec.engine, e)) from e
    load_ns = time.perf_counter_ns() - t0
    refuse_downgrade(runtime)
    given = given_feeds(spec.feeds)
    feeds, fed, notes = make_feeds(runtime.inputs(), spec.input_size, spec.seed, given)
    run_once = functools.partial(runtime.run, feeds)
    t0 = time.perf_counter_ns()
    try:
        run_once()
    except Exception as e:  # engines raise many types
        raise CellFailure(
            "run", f"inference failed: {short_error(e)}", "check the model inputs"
        ) from e
    first_ns = time.perf_counter_ns() - t0
    warm_ns, settled = warm_up(run_once, spec.warmup)
    samples = measure(run_once, spec.min_iters, spec.min_time_s)
    stats = summarize([s / 1e6 for s in samples])
    return Measurement(
        engine_version=runtime.version,
        engine_settings=dict(runtime.settings),
        inputs=fed,
        notes=tuple(notes),
        load_ms=load_ns / 1e6,
        first_inference_ms=first_ns / 1e6,
        warmup=Warmup(len(warm_ns), settled, tuple(warm_ns)),
        samples_ns=tuple(samples),
        stats=stats,
        stability=stability(stats),
        peak_rss_mb=peak_rss_mb(),
        rss_before_load_mb=rss_before_load,
        executed_precision=runtime.executed_precision or spec.precision,
    )


def refuse_downgrade(runtime: Runtime) -> None:
    """Raise a ``skipped`` :class:`CellFailure` when the engine computes in another precision
    than the cell asked for: a precision the hardware cannot run is never labelled as run."""
    try:
        refuse_unavailable_precision(runtime)  # the check infer and eval make
    except PrecisionUnavailableError as e:
        ran = runtime.executed_precision
        raise CellFailure(
            SKIPPED,
            f"{e.message}; not measured",
            f"the {ran} cell measures what this CPU runs (--precision {ran})",
        ) from e


def run(spec_json: Any) -> CellResult:
    """Parse a spec and run it; every failure becomes a :class:`Failure` (a crash's traceback
    goes to stderr).

    >>> run({"path": "m.onnx"})
    Failure(stage='spec', error="bad benchmark spec: $: missing required property 'engine'", \
hint='this is a picozoo bug: report it')
    """
    try:
        return run_spec(BenchSpec.from_json(spec_json))
    except FieldError as e:
        return Failure("spec", f"bad benchmark spec: {e}", "this is a picozoo bug: report it")
    except CellFailure as e:
        return e.failure
    except Exception as e:  # report any crash as a failed cell
        traceback.print_exc()
        return Failure("crash", f"{type(e).__name__}: {short_error(e)}")


def _rss_mb(field: str, status: Path = Path("/proc/self/status")) -> float | None:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process in MB (None: no ``/proc``).

    >>> _rss_mb("VmHWM") > 1 if Path("/proc/self/status").exists() else True
    True
    """
    try:
        text = status.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: ``VmHWM`` (reset by ``exec``, unlike ``ru_maxrss``,
    which keeps the peak of the process that started us), else ``ru_maxrss`` off Linux.

    >>> peak_rss_mb() > 1
    True
    """
    hwm = _rss_mb("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the bench that started it dies, even by SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``), and exit at once if it already has (the parent's pid, from
    ``PICOZOO_BENCH_PARENT``, is no longer ours). Elsewhere this does nothing: the parent
    still kills the worker's process group on every way out it can see."""
    parent = os.environ.get("PICOZOO_BENCH_PARENT", "")
    if not sys.platform.startswith("linux") or not parent.isdigit():
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    """Read the spec, run, print the JSON result on the real stdout; 0 when it measured.

    >>> main(["spec.json"])  # doctest: +SKIP
    {"ok": true, "engine_version": "1.32.0", ...}
    0
    """
    args = sys.argv[1:] if argv is None else argv
    die_with_parent()
    # Everything the engines print goes to stderr; only our JSON reaches the real stdout.
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    src = args[0] if args else "-"
    try:
        spec = json.loads(sys.stdin.read() if src == "-" else Path(src).read_text())
    except (OSError, ValueError) as e:
        result: CellResult = Failure("spec", f"cannot read the spec {src}: {e}")
    else:
        result = run(spec)
    real_stdout.write(json.dumps(result_to_json(result)) + "\n")
    real_stdout.flush()
    return 0 if isinstance(result, Measurement) else 3


if __name__ == "__main__":
    sys.exit(main())
