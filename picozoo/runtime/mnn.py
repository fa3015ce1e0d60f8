"""MNN adapter (CPU): an ``.mnn`` file, run as a module
(``MNN.nn.load_module_from_file``) with a runtime manager of ``numThread`` = N.

Precision: ``fp32`` runs MNN's ``normal`` precision (``high`` for the parity reference),
``fp16`` its ``low`` precision (fp16 arithmetic where the CPU has it; x86 has not, so it runs
fp32 there), ``int8`` the ``low`` precision with ``low`` memory (MNN computes straight from
8-bit weights, for models converted with ``--precision int8``). Feeds and outputs use the ONNX
names and order of the ``.io.json`` beside the model (see :mod:`.iomap`).

What runs: MNN reports the CPU's features when imported (``The device supports: i8sdot:0,
fp16:0, ...``); ``fp16`` computes in fp16 only where that report says ``fp16:1``, else in fp32
(see :func:`executed`). ``int8`` is recorded as configured (8-bit weights, ``low`` memory): MNN
does not report what its kernels compute in.

>>> MODES["fp32"], MODES["int8"]
({'precision': 'normal', 'memory': 'normal'}, {'precision': 'low', 'memory': 'low'})
>>> executed("fp16", device_fp16=False)[0]
'fp32'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capture import captured_output
from ..errors import EngineError, ModelFileError, require
from .base import short_error
from .iomap import MappedRuntime, mapped_settings, read_io_map

EXTRA = "mnn"
MODES = {
    "fp32": {"precision": "normal", "memory": "normal"},
    "fp16": {"precision": "low", "memory": "normal"},
    "int8": {"precision": "low", "memory": "low"},
}


#: what MNN printed when this process imported it through :func:`import_mnn`
_IMPORT_REPORT: list[str] = []


def import_mnn() -> Any:
    """``MNN`` (it prints the CPU's features on stdout when imported: captured, and kept for
    :func:`device_fp16`)."""
    import sys

    fresh = "MNN" not in sys.modules
    with captured_output() as out:
        module = require("MNN", EXTRA, package="mnn")
    if fresh:
        _IMPORT_REPORT.append(out.text)
    return module


def device_fp16(report: str | None = None) -> tuple[bool | None, str]:
    """Whether MNN finds fp16 arithmetic on this CPU, and where that was read: MNN's own import
    report (``fp16:0``/``fp16:1``), else the machine (MNN's CPU backend has fp16 arithmetic on
    ARMv8.2 only: False on x86), else None (unknown).

    >>> device_fp16("The device supports: i8sdot:0, fp16:0, i8mm: 0, sve2: 0, sme2: 0")
    (False, "MNN's device report: fp16:0")
    """
    import platform
    import re

    text = report if report is not None else "".join(_IMPORT_REPORT)
    m = re.search(r"fp16:\s*(\d)", text)
    if m:
        return m.group(1) == "1", f"MNN's device report: fp16:{m.group(1)}"
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False, "x86: MNN's CPU backend has no fp16 arithmetic there"
    return None, "MNN did not report its device's fp16 support"


def executed(precision: str, *, device_fp16: bool | None) -> tuple[str, str]:
    """(precision MNN computes in, why) for ``precision`` on a CPU with or without fp16
    arithmetic (None: unknown, taken as configured).

    >>> executed("fp16", device_fp16=True)
    ('fp16', 'precision low on a CPU with fp16 arithmetic')
    >>> executed("int8", device_fp16=False)[0]
    'int8'
    """
    if precision == "fp16" and device_fp16 is False:
        return "fp32", "precision low, but this CPU has no fp16 arithmetic"
    if precision == "fp16":
        known = "on a CPU with fp16 arithmetic" if device_fp16 else "as configured"
        return "fp16", f"precision low {known}"
    if precision == "int8":
        return "int8", "as configured: 8-bit weights, memory low (MNN does not report more)"
    return precision, "precision normal (high for the parity reference): fp32"


@dataclass
class MnnRuntime(MappedRuntime):
    module: Any = None

    @property
    def version(self) -> str:
        return str(import_mnn().version())

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        import numpy as np

        F = import_mnn().expr
        names = [t.name for t in self.inputs()]
        missing = self.missing_inputs(feeds)
        if missing:
            raise EngineError(f"MNN model input(s) {missing} were not given")
        args = []
        for n in names:
            x = np.ascontiguousarray(feeds[n])
            args.append(F.const(x, list(x.shape), F.NCHW if x.ndim == 4 else F.NHWC))
        outs = self.module.forward(args)
        results = []
        for o in outs:
            if o.data_format == F.NC4HW4:
                o = F.convert(o, F.NCHW)
            results.append(np.array(o.read(), copy=True))
        return results


def open_model(
    path: Path, *, threads: int, precision: str, reference: bool, pipelined: bool = False
) -> MnnRuntime:
    if path.is_dir() or path.suffix != ".mnn":
        raise ModelFileError(
            f"{path} is not an .mnn file",
            hint="MNN runs .mnn files: `picozoo convert MODEL --to mnn`",
        )
    io = read_io_map(path)
    MNN = import_mnn()
    mode = dict(MODES[precision])
    if reference and precision == "fp32":
        mode["precision"] = "high"
    config = {"backend": "CPU", "numThread": threads, **mode}
    try:
        if io is not None:
            inputs, outputs = io.engine_names("inputs"), io.engine_names("outputs")
        else:
            info = MNN.nn.load_module_from_file(str(path), [], []).get_info()
            inputs, outputs = list(info["inputNames"]), list(info["outputNames"])
        with captured_output():  # "MNN use low precision"
            manager = MNN.nn.create_runtime_manager((config,))
            module = MNN.nn.load_module_from_file(
                str(path), inputs, outputs, runtime_manager=manager
            )
    except Exception as e:  # MNN raises RuntimeError/ValueError, or returns None
        raise EngineError(
            f"MNN cannot load {path.name}: {short_error(e)}", hint="check the file"
        ) from e
    if module is None:
        raise EngineError(f"MNN cannot load {path.name}", hint="check the file")
    fp16, source = device_fp16()
    ran, why = executed(precision, device_fp16=fp16)
    if ran != precision:
        why += f" ({source})"
    return MnnRuntime(
        path=path,
        threads=threads,
        precision=precision,
        settings={**config, "device_fp16": fp16, "device_report": source, **mapped_settings(io)},
        engine="mnn",
        extra=EXTRA,
        executed_precision=ran,
        precision_note=why,
        module=module,
        io=io,
        input_names=tuple(inputs),
        output_names_=tuple(outputs),
    )
