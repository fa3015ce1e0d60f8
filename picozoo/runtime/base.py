"""The engine-neutral interface and the engine table.

>>> load("tensorflow", Path("m.pb"))
Traceback (most recent call last):
...
picozoo.errors.UsageError: unknown engine 'tensorflow' (use one of: onnxruntime, paddle, openvino, \
mnn, ncnn, lite)
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    EngineError,
    ModelFileError,
    PicozooError,
    PrecisionUnavailableError,
    UsageError,
)

#: engine name -> (adapter module, extra that installs the engine)
ENGINES: dict[str, tuple[str, str]] = {
    "onnxruntime": ("picozoo.runtime.onnxruntime", "bench"),
    "paddle": ("picozoo.runtime.paddle", "convert"),
    "openvino": ("picozoo.runtime.openvino", "openvino"),
    "mnn": ("picozoo.runtime.mnn", "mnn"),
    "ncnn": ("picozoo.runtime.ncnn", "ncnn"),
    # an x86 .nb, in the managed Paddle-Lite tool environment's Python (see runtime/lite.py)
    "lite": ("picozoo.runtime.lite", "lite"),
}
#: engines that run a file converted for them (``picozoo.convert.convert(..., to=engine)``),
#: and the suffixes of their own model files (run as they are)
CONVERTED_ENGINES: dict[str, tuple[str, ...]] = {
    "openvino": (".xml",),
    "mnn": (".mnn",),
    "ncnn": (".param",),
    "lite": (".nb",),
}
#: precisions each engine can run (fp32 first: the default, and the one parity is proved on)
PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("fp32",),
    "paddle": ("fp32",),
    "openvino": ("fp32", "bf16", "fp16"),
    "mnn": ("fp32", "fp16", "int8"),
    "ncnn": ("fp32", "fp16"),
    "lite": ("fp32",),  # x86 kernels: fp32 (an FP16 .nb is ARM's, built beside it)
}


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, shape (None/str for dynamic dims) and numpy dtype name."""

    name: str
    shape: list[Any]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class Runtime(ABC):
    """A model loaded by one engine, ready to run."""

    path: Path
    threads: int
    precision: str = "fp32"
    settings: dict[str, Any] = field(default_factory=dict)

    engine: str = ""
    extra: str = ""
    #: the precision the engine really computes in, read back from the engine after loading
    #: (OpenVINO's compiled model, ncnn's CPU, MNN's CPU report); :func:`load` sets it to
    #: ``precision`` for engines that run only what they are asked (ONNX Runtime, Paddle: fp32)
    executed_precision: str = ""
    #: why ``executed_precision`` is not ``precision`` (or how it was read back)
    precision_note: str = ""

    @property
    def downgraded(self) -> bool:
        """True when the engine does not compute in the precision it was asked for."""
        return self.executed_precision not in ("", self.precision)

    @property
    @abstractmethod
    def version(self) -> str:
        """The engine's version, e.g. ``1.20.1``."""

    @abstractmethod
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs, in the engine's order."""

    @abstractmethod
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs, in the engine's order."""

    @abstractmethod
    def run(self, feeds: dict[str, Any]) -> list[Any]:
        """Run one inference; returns every output (numpy arrays) in :meth:`outputs` order."""

    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs()]


def load(
    engine: str,
    path: Path,
    *,
    threads: int = 1,
    precision: str = "fp32",
    reference: bool = False,
    pipelined: bool = False,
) -> Runtime:
    """Load ``path`` with ``engine``.

    ``reference=True`` asks for the engine's plain reference kernels (no graph fusion, no
    oneDNN), as the parity check wants; otherwise the engine is set up for speed, as the bench
    measures it. ``pipelined=True`` says the process does other CPU work between and during
    runs (``infer``/``eval``: reading, pre-processing, NMS): ONNX Runtime's threads then sleep
    instead of busy-waiting between operators (``allow_spinning=0``), which would take the
    cores that work needs; other engines are unchanged. Raises
    :class:`~picozoo.errors.MissingDependencyError` when the engine is not installed,
    :class:`~picozoo.errors.EngineError` when it cannot load the model.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}", hint=f"use one of: {', '.join(ENGINES)}")
    if precision not in PRECISIONS[engine]:
        raise UsageError(
            f"precision {precision!r} is not available for {engine}",
            hint=f"use one of: {', '.join(PRECISIONS[engine])}",
        )
    if engine != "lite":  # Paddle-Lite runs x86 .nb files only (it refuses ARM ones itself)
        refuse_lite(Path(path))
    module = importlib.import_module(ENGINES[engine][0])
    runtime: Runtime = module.open_model(
        Path(path),
        threads=int(threads),
        precision=precision,
        reference=reference,
        pipelined=pipelined,
    )
    check_input_shapes({i.name: i.shape for i in runtime.inputs()}, Path(path).name)
    if not runtime.executed_precision:
        runtime.executed_precision = precision
    runtime.settings["executed_precision"] = runtime.executed_precision
    if runtime.precision_note:
        runtime.settings["precision_note"] = runtime.precision_note
    return runtime


def precision_shortfall(engine: str, requested: str, executed: str, why: str = "") -> str | None:
    """What to say when ``engine``, asked for ``requested``, computes in ``executed`` (None
    when they are the same): a requested precision the hardware cannot run is never labelled
    as run.

    >>> precision_shortfall("openvino", "bf16", "fp32", "INFERENCE_PRECISION_HINT read back: f32")
    'openvino cannot run bf16 on this CPU: it computes in fp32 (INFERENCE_PRECISION_HINT read \
back: f32)'
    >>> precision_shortfall("openvino", "bf16", "bf16") is None
    True
    """
    if executed == requested:
        return None
    return f"{engine} cannot run {requested} on this CPU: it computes in {executed}" + (
        f" ({why})" if why else ""
    )


def refuse_unavailable_precision(runtime: Runtime) -> None:
    """Raise :class:`~picozoo.errors.PrecisionUnavailableError` (exit 13) when ``runtime``'s
    engine computes in another precision than it was asked for (read back after loading, see
    :attr:`Runtime.executed_precision`): ``infer`` and ``eval`` refuse such a run, as ``bench``
    skips its cell, so no result is labelled with a precision that did not run.

    >>> from types import SimpleNamespace as Loaded
    >>> rt = Loaded(engine="openvino", precision="bf16", executed_precision="fp32",
    ...             precision_note="INFERENCE_PRECISION_HINT read back: fp32")
    >>> refuse_unavailable_precision(rt)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    picozoo.errors.PrecisionUnavailableError: openvino cannot run bf16 on this CPU: it computes \
in fp32 (INFERENCE_PRECISION_HINT read back: fp32) (--precision fp32 runs what this CPU computes \
in; ...)
    >>> refuse_unavailable_precision(Loaded(engine="onnxruntime", precision="fp32",
    ...                                     executed_precision="fp32", precision_note=""))
    """
    why = precision_shortfall(
        runtime.engine, runtime.precision, runtime.executed_precision, runtime.precision_note
    )
    if why is None or not runtime.executed_precision:
        return
    ran = runtime.executed_precision
    raise PrecisionUnavailableError(
        why,
        hint=f"--precision {ran} runs what this CPU computes in; `picozoo bench MODEL --engine "
        f"{runtime.engine} --precision all` shows which precisions run here",
    )


def describe_precision(runtime: Runtime) -> str:
    """One line saying what ran: the engine, the precision as executed (read back after
    loading) and the threads, for ``infer``/``eval`` to print.

    >>> from types import SimpleNamespace as Loaded
    >>> describe_precision(Loaded(engine="onnxruntime", precision="fp32", threads=2,
    ...                           executed_precision="fp32", precision_note=""))
    'engine onnxruntime, precision fp32 as executed, 2 threads'
    >>> describe_precision(Loaded(engine="openvino", precision="bf16", threads=1,
    ...     executed_precision="bf16", precision_note="INFERENCE_PRECISION_HINT read back: bf16"))
    'engine openvino, precision bf16 as executed (INFERENCE_PRECISION_HINT read back: bf16), 1 \
thread'
    """
    ran = runtime.executed_precision or runtime.precision
    note = f" ({runtime.precision_note})" if runtime.precision_note else ""
    threads = f"{runtime.threads} thread{'s' * (runtime.threads != 1)}"
    return f"engine {runtime.engine}, precision {ran} as executed{note}, {threads}"


#: The most elements one model input may have: 2**28, 1 GiB as float32 (an image of
#: 3x9459x9459); PicoDet's are 3x320x320 to 3x640x640 a batch.
MAX_INPUT_ELEMENTS = 1 << 28


def check_input_shapes(
    shapes: Mapping[str, Sequence[Any]], where: str, *, error: type[PicozooError] | None = None
) -> None:
    """Refuse an input shape too large to feed (a model declaring 1x3x100000x200000 would make
    every engine allocate 224 GiB): :class:`~picozoo.errors.EngineError` (exit 13) unless
    ``error`` says otherwise. Dynamic dims (None, names, -1) are not counted.

    >>> check_input_shapes({"image": [1, 3, 100000, 200000]}, "huge.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    picozoo.errors.EngineError: huge.onnx: input 'image' of 1x3x100000x200000 is 224 GiB as \
float32, more than picozoo feeds (1 GiB) (...)
    """
    for name, dims in shapes.items():
        elements = math.prod(d for d in dims if isinstance(d, int) and d > 0)
        if elements > MAX_INPUT_ELEMENTS:
            shape = "x".join(str(d) for d in dims)
            raise (error or EngineError)(
                f"{where}: input {name!r} of {shape} is {elements * 4 / (1 << 30):.0f} GiB as "
                f"float32, more than picozoo feeds ({MAX_INPUT_ELEMENTS * 4 >> 30} GiB)",
                hint="use a model exported at its real input size (PicoDet: e.g. 1x3x416x416), "
                "or give a smaller --input-shape",
            )


def refuse_lite(path: Path) -> None:
    """Refuse a Paddle-Lite ``.nb`` for ARM (any ``.nb`` but for ``--engine lite``, which reads
    its kernels first): on x86 the paddlelite wheels load an ARM ``.nb`` and return garbage in
    0.02 ms. The x86 ``.nb`` that ``convert --to lite`` builds beside it runs with
    ``--engine lite``.

    >>> refuse_lite(Path("model.nb"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    picozoo.errors.ModelFileError: model.nb is a Paddle-Lite model for ARM: picozoo cannot run \
or bench it (...)
    """
    import platform

    if path.suffix != ".nb":
        return
    machine = platform.machine() or "this machine"
    raise ModelFileError(
        f"{path.name} is a Paddle-Lite model for ARM: picozoo cannot run or bench it",
        hint=f"run it with Paddle-Lite on an ARM device; on {machine} an ARM .nb loads and returns "
        "garbage. Here, run the x86 .nb `convert --to lite` builds beside it (model.x86.nb) "
        "with --engine lite, or the Paddle model or its ONNX/OpenVINO/MNN/NCNN conversion",
    )


def short_error(e: BaseException, limit: int = 300) -> str:
    """An exception as one short line (engines raise long multi-line messages)."""
    text = " ".join(str(e).split())
    return (text[:limit] + "...") if len(text) > limit else text or type(e).__name__
