"""ONNX -> an inference engine's own format (OpenVINO IR, MNN, NCNN), one recipe for all three.

An engine supplies an :class:`EngineWriter` (``to_openvino``, ``to_mnn``, ``to_ncnn``): its
files, tool identities and a ``write`` step. The recipe (cached by
:mod:`picozoo.convert.cached` like ``--to onnx``) runs the source ONNX on ONNX Runtime for the
parity inputs, writes the engine's files into the staging folder, an ``.io.json`` beside them
when the engine renames inputs/outputs (see :mod:`picozoo.runtime.iomap`), and proves the
result with :mod:`.engine_parity`. All of it runs in a child process (:mod:`picozoo.native`):
an engine or converter that aborts is one error line (exit 9), not the end of picozoo.

>>> engine_options("ncnn", "fp32", None)["target"], PIPELINE_VERSION
('ncnn', 1)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, UsageError
from ..runtime.base import PRECISIONS
from ..runtime.iomap import IoMap, IoTensor, io_file
from .cached import Recipe
from .sources import OnnxFile, Progress

#: Bump when the engine pipeline changes in a way that changes its outputs.
PIPELINE_VERSION = 1
ENGINE_FORMATS = ("openvino", "mnn", "ncnn")

#: ``write(onnx, staging, input shapes, precision) -> provenance fields``
Write = Callable[[Path, Path, dict[str, list[int]], str], dict[str, Any]]
#: ``(side, index, onnx name) -> the engine's name`` (side: ``inputs`` / ``outputs``)
Naming = Callable[[str, int, str], str]


@dataclass(frozen=True)
class EngineWriter:
    """What one engine supplies to the recipe."""

    engine: str
    output_file: str  #: the main file, e.g. ``model.xml``
    siblings: tuple[str, ...]  #: the other files it writes (the ``.io.json`` is added)
    tools: dict[str, Any]
    write: Write
    naming: Naming | None = None  #: set when the engine renames inputs/outputs


def check_installed(module: str, extra: str, *, package: str | None = None) -> None:
    """Raise :class:`~picozoo.errors.MissingDependencyError` (exit 11) unless ``module`` is
    installed; found, not imported: the recipe imports it in its child process (an import that
    fails there is the same error).

    >>> check_installed("no_such_module_xyz", "openvino")
    Traceback (most recent call last):
    ...
    picozoo.errors.MissingDependencyError: no_such_module_xyz is not installed; this needs the \
[openvino] extra: pip install 'picozoo[openvino]'
    """
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingDependencyError(package or module.split(".")[0], extra)


def check_precision(engine: str, precision: str) -> str:
    """``precision`` if ``engine`` can run it (``PRECISIONS`` of :mod:`picozoo.runtime.base`).

    >>> check_precision("ncnn", "int8")
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: --precision int8 is not available for ncnn (use one of: fp32, fp16)
    """
    if precision not in PRECISIONS[engine]:
        raise UsageError(
            f"--precision {precision} is not available for {engine}",
            hint=f"use one of: {', '.join(PRECISIONS[engine])}",
        )
    return precision


def engine_options(
    engine: str, precision: str, input_shape: dict[str, list[int]] | None
) -> dict[str, Any]:
    """The normalized options of an engine conversion (cache key and provenance)."""
    return {
        "target": engine,
        "precision": check_precision(engine, precision),
        "input_shape": dict(sorted((input_shape or {}).items())) or None,
        "parity_seeds": [0, 1, 2, 3],
        "pipeline": PIPELINE_VERSION,
    }


def engine_recipe(
    writer: EngineWriter,
    *,
    precision: str = "fp32",
    image_size: tuple[int, int] | None = None,
    input_shape: dict[str, list[int]] | None = None,
    progress: Progress | None = None,
) -> Recipe:
    """The recipe of ``writer``'s engine for :mod:`picozoo.convert.cached` (the source must be
    an :class:`~picozoo.convert.sources.OnnxFile`).

    >>> r = engine_recipe(EngineWriter("mnn", "model.mnn", (), {"mnn": "3.6.1"},
    ...                                write=lambda *a: {}, naming=lambda s, i, n: n))
    >>> r.target, r.output_file, r.siblings
    ('mnn', 'model.mnn', ('model.io.json',))
    """
    options = engine_options(writer.engine, precision, input_shape)
    siblings = writer.siblings
    if writer.naming is not None:
        siblings += (io_file(Path(writer.output_file)).name,)
    produce = functools.partial(
        _produce,
        writer=writer,
        precision=precision,
        image_size=image_size,
        input_shape=input_shape,
        say=progress or (lambda _m: None),
    )
    return Recipe(writer.engine, writer.output_file, options, writer.tools, produce, siblings)


def _produce(
    files: OnnxFile,
    staging: Path,
    *,
    writer: EngineWriter,
    precision: str,
    image_size: tuple[int, int] | None,
    input_shape: dict[str, list[int]] | None,
    say: Progress,
) -> dict[str, Any]:
    """Every step in a child process (:mod:`picozoo.native`): ONNX Runtime, the engine's
    converter and the engine itself are native code that can abort; there an abort is one
    error line naming the step's tool."""
    from ..native import run_native

    fields: dict[str, Any] = run_native(
        "picozoo.convert.to_engine:produce_here",
        tool=functools.partial(_tool_at, writer.engine),
        subject=files.model_file.name,
        progress=say,
        files=files,
        staging=staging,
        writer=writer,
        precision=precision,
        image_size=image_size,
        input_shape=input_shape,
    )
    return fields


def _tool_at(engine: str, step: str | None) -> str:
    """The tool at work at the progress line ``step`` (for the error of a crash).

    >>> _tool_at("mnn", None), _tool_at("mnn", "mnn (fp32) from model.onnx, inputs image=1x3x8x8")
    ('ONNX Runtime', "mnn's converter")
    """
    if step is None:
        return "ONNX Runtime"
    if step.startswith("parity check"):
        return f"{engine} or ONNX Runtime (parity check)"
    return f"{engine}'s converter"


def produce_here(
    files: OnnxFile,
    staging: Path,
    *,
    writer: EngineWriter,
    precision: str,
    image_size: tuple[int, int] | None,
    input_shape: dict[str, list[int]] | None,
    say: Progress,
) -> dict[str, Any]:
    """Every step of :func:`_produce`, in this process."""
    from .engine_parity import check_engine_parity, run_onnx_reference

    if not isinstance(files, OnnxFile):  # pragma: no cover - run.py always gives an ONNX
        raise TypeError("engine conversions read an ONNX file")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ref = run_onnx_reference(files.model_file, image_size, input_shape)
    timings["reference"] = _lap(t)
    shapes = ", ".join(f"{n}={'x'.join(map(str, s))}" for n, s in ref.shapes.items())
    say(f"{writer.engine} ({precision}) from {files.model_file.name}, inputs {shapes}")
    t = time.perf_counter()
    fields = writer.write(files.model_file, staging, ref.shapes, precision)
    timings["convert"] = _lap(t)
    main = staging / writer.output_file
    io = _io_map(writer.naming, ref) if writer.naming is not None else None
    if io is not None:
        io.write(main)
    say(f"parity check: {writer.engine} ({precision}) vs ONNX Runtime, seeds 0-3")
    t = time.perf_counter()
    parity = check_engine_parity(writer.engine, main, ref, precision=precision)
    timings["parity"] = _lap(t)
    worst = max((o.get("max_abs", 0.0) for o in parity["outputs"]), default=0.0)
    agreement = parity["agreement"].get("agreement")
    verdict = "ok" if parity["passed"] is True else "reported (reduced precision)"
    if parity.get("precision_note"):
        verdict = f"reported at {parity['executed_precision']}, what ran"
    say(
        f"parity {verdict}: {len(parity['outputs'])} outputs, max abs err {worst:.3g}"
        + (f", detection agreement {agreement:.3f}" if agreement is not None else "")
    )
    output: dict[str, Any] = {
        "inputs": ref.shapes,
        "input_order": list(ref.shapes),
        "outputs": ref.output_shapes,
        **fields.pop("output", {}),
    }
    if io is not None:
        output["engine_names"] = {
            "inputs": {t.name: t.engine_name for t in io.inputs},
            "outputs": {t.name: t.engine_name for t in io.outputs},
        }
    return {
        **fields,
        "source_onnx": str(files.model_file),
        "output": output,
        "parity": parity,
        "seconds": timings,
    }


def _io_map(naming: Naming, ref: Any) -> IoMap:
    """The ``.io.json`` of an engine that renames: ONNX names and order, the engine's names."""
    inputs = [
        IoTensor(n, naming("inputs", i, n), list(s), ref.dtypes.get(n, "float32"))
        for i, (n, s) in enumerate(ref.shapes.items())
    ]
    outputs = [
        IoTensor(n, naming("outputs", i, n), list(o.shape), str(o.dtype))
        for i, (n, o) in enumerate(zip(ref.names, ref.outputs[0], strict=True))
    ]
    return IoMap(inputs, outputs)


def _lap(t: float) -> float:
    return round(time.perf_counter() - t, 3)
