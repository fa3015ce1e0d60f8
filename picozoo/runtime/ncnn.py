"""NCNN adapter (CPU): a ``.param`` file and the ``.bin`` beside it (what ``pnnx`` writes).

Traps handled here: ``ncnn.Mat(ndarray)`` ignores numpy strides (a transposed view gives
garbage), so every input is copied C-contiguous -- and it borrows the array's memory, so the
copy is kept alive until the outputs are extracted (a freed temporary gave garbage too); NCNN
has no batch dimension, so each item of a batch is run on its own (``in0`` gets ``x[i]``) and
the outputs are stacked back. fp16
storage/arithmetic (NCNN's default) is off unless ``precision="fp16"``; bf16 storage is off.
Threads: ``opt.num_threads`` = N. Reference settings (parity) also turn off Winograd and the
SGEMM convolution. Feeds and outputs use the ONNX names, order and shapes of the ``.io.json``
beside the model (see :mod:`.iomap`); without one, NCNN's ``in0``/``out0`` names are used.

What runs: the ``net.opt`` flags are read back after loading, with whether ncnn finds fp16
arithmetic on this CPU (``ncnn.cpu_support_arm_asimdhp()``: ARMv8.2 only; ncnn has no fp16
arithmetic on x86), into :attr:`settings` and ``executed_precision`` (see :func:`executed`).

>>> options("fp32", reference=True)["use_fp16_storage"]
False
>>> options("fp16", reference=False)["use_fp16_storage"]
True
>>> executed(options("fp16", reference=False), fp16_arithmetic=False)[0]
'fp32'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import EngineError, ModelFileError, require
from .base import short_error
from .iomap import MappedRuntime, mapped_settings, read_io_map

EXTRA = "ncnn"


def options(precision: str, *, reference: bool) -> dict[str, bool]:
    """The ``net.opt`` flags picozoo sets (threads apart)."""
    fp16 = precision == "fp16"
    flags = {
        "use_fp16_storage": fp16,
        "use_fp16_packed": fp16,
        "use_fp16_arithmetic": fp16,
        "use_bf16_storage": False,
        "use_bf16_packed": False,
        "use_vulkan_compute": False,
    }
    if reference:
        flags.update(use_winograd_convolution=False, use_sgemm_convolution=False)
    return flags


#: the ``net.opt`` precision flags read back after loading
PRECISION_FLAGS = (
    "use_fp16_storage",
    "use_fp16_packed",
    "use_fp16_arithmetic",
    "use_bf16_storage",
    "use_bf16_packed",
)


def executed(applied: dict[str, Any], *, fp16_arithmetic: bool) -> tuple[str, str]:
    """(precision ncnn computes in, how that was decided) from the ``net.opt`` flags as applied
    and whether ncnn finds fp16 arithmetic on the CPU.

    >>> executed({"use_fp16_arithmetic": True, "use_fp16_storage": True}, fp16_arithmetic=True)
    ('fp16', 'use_fp16_arithmetic on, and this CPU has fp16 arithmetic')
    >>> executed({"use_fp16_arithmetic": False}, fp16_arithmetic=True)[0]
    'fp32'
    """
    if applied.get("use_fp16_arithmetic") and fp16_arithmetic:
        return "fp16", "use_fp16_arithmetic on, and this CPU has fp16 arithmetic"
    if applied.get("use_fp16_arithmetic"):
        return "fp32", (
            "use_fp16_arithmetic on, but ncnn finds no fp16 arithmetic on this CPU: "
            "cpu_support_arm_asimdhp() = 0, none on x86"
        )
    return "fp32", "use_fp16_arithmetic off"


@dataclass
class NcnnRuntime(MappedRuntime):
    UNKNOWN_INPUT: ClassVar[tuple[int | None, ...]] = (1, 3, None, None)  # one image at a time

    net: Any = None

    @property
    def version(self) -> str:
        return str(require("ncnn", EXTRA).__version__)

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        import numpy as np

        ncnn = require("ncnn", EXTRA)
        names = [t.name for t in self.inputs()]
        missing = self.missing_inputs(feeds)
        if missing:
            raise EngineError(f"NCNN model input(s) {missing} were not given")
        arrays = [np.asarray(feeds[n], dtype="float32") for n in names]
        batch = arrays[0].shape[0] if arrays and arrays[0].ndim >= 2 else 1
        per_item: list[list[Any]] = []
        for b in range(batch):
            ex = self.net.create_extractor()
            # ncnn.Mat reads the buffer as C-contiguous whatever the strides say, and does not
            # own it: the copies must live until every output is extracted
            items = [np.ascontiguousarray(x[b] if x.ndim >= 2 and x.shape[0] == batch else x)
                     for x in arrays]  # fmt: skip
            for engine_name, item in zip(self.input_names, items, strict=True):
                ex.input(engine_name, ncnn.Mat(item))
            outs = []
            for engine_name in self.output_names_:
                ret, mat = ex.extract(engine_name)
                if ret != 0:
                    raise EngineError(f"NCNN could not compute output {engine_name!r} ({ret})")
                outs.append(np.array(mat, copy=True))
            per_item.append(outs)
        return [self._shaped(i, [o[i] for o in per_item]) for i in range(len(self.output_names_))]

    def _shaped(self, index: int, items: list[Any]) -> Any:
        """One output with the batch stacked back, in the ONNX shape when it is known."""
        import numpy as np

        out = np.stack(items)
        if self.io is not None:
            shape = [len(items), *self.io.outputs[index].shape[1:]]
            if int(np.prod(shape)) == out.size:
                return out.reshape(shape)
        return out


def _pnnx_order(names: list[str]) -> list[str]:
    """Blob names with pnnx's ``in<N>``/``out<N>`` in N order (the ONNX order), others after.

    >>> _pnnx_order(["out0", "out4", "out1", "prob"])
    ['out0', 'out1', 'out4', 'prob']
    """
    import re

    def key(name: str) -> tuple[int, int, str]:
        m = re.fullmatch(r"(?:in|out)(\d+)", name)
        return (0, int(m.group(1)), "") if m else (1, 0, name)

    return sorted(names, key=key)


def open_model(
    path: Path, *, threads: int, precision: str, reference: bool, pipelined: bool = False
) -> NcnnRuntime:
    if path.is_dir() or path.suffix != ".param":
        raise ModelFileError(
            f"{path} is not an NCNN .param file",
            hint="NCNN runs .param + .bin files: `picozoo convert MODEL --to ncnn`",
        )
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise ModelFileError(
            f"{path}: its weights {weights.name} are missing",
            hint="keep the .param and .bin of an NCNN model together",
        )
    io = read_io_map(path)
    ncnn = require("ncnn", EXTRA)
    flags = options(precision, reference=reference)
    net = ncnn.Net()
    net.opt.num_threads = threads
    for name, value in flags.items():
        setattr(net.opt, name, value)
    try:
        if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
            raise RuntimeError("load_param/load_model failed")
        inputs, outputs = _pnnx_order(net.input_names()), _pnnx_order(net.output_names())
    except Exception as e:  # ncnn returns error codes, or raises RuntimeError
        raise EngineError(
            f"NCNN cannot load {path.name}: {short_error(e)}", hint="check the .param/.bin pair"
        ) from e
    if io is not None:
        unknown = [n for n in io.engine_names("inputs") + io.engine_names("outputs")
                   if n not in inputs + outputs]  # fmt: skip
        if unknown:
            raise ModelFileError(
                f"{path}: its .io.json names blobs the model does not have: {unknown}",
                hint="convert the model again with `picozoo convert --to ncnn`",
            )
        inputs, outputs = io.engine_names("inputs"), io.engine_names("outputs")
    applied = {name: bool(getattr(net.opt, name)) for name in PRECISION_FLAGS}
    fp16_cpu = bool(ncnn.cpu_support_arm_asimdhp())
    ran, why = executed(applied, fp16_arithmetic=fp16_cpu)
    return NcnnRuntime(
        path=path,
        threads=threads,
        precision=precision,
        settings={
            "num_threads": threads,
            **flags,
            "applied": applied,
            "cpu_fp16_arithmetic": fp16_cpu,
            **mapped_settings(io),
        },
        engine="ncnn",
        extra=EXTRA,
        executed_precision=ran,
        precision_note=why,
        net=net,
        io=io,
        input_names=tuple(inputs),
        output_names_=tuple(outputs),
    )
