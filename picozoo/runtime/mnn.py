"""MNN adapter (CPU): an ``.mnn`` file, run as a module
(``MNN.nn.load_module_from_file``) with a runtime manager of ``numThread`` = N.

Precision: ``fp32`` runs MNN's ``normal`` precision (``high`` for the parity reference),
``fp16`` its ``low`` precision (fp16 arithmetic where the CPU has it; x86 has not, so it runs
fp32 there), ``int8`` the ``low`` precision with ``low`` memory (MNN computes straight from
8-bit weights, for models converted with ``--precision int8``). Feeds and outputs use the ONNX
names and order of the ``.io.json`` beside the model (see :mod:`.iomap`).

>>> MODES["fp32"], MODES["int8"]
({'precision': 'normal', 'memory': 'normal'}, {'precision': 'low', 'memory': 'low'})
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


def import_mnn() -> Any:
    """``MNN`` (it prints the CPU's features on stdout when imported: captured)."""
    with captured_output():
        return require("MNN", EXTRA, package="mnn")


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
    return MnnRuntime(
        path=path,
        threads=threads,
        precision=precision,
        settings={**config, **mapped_settings(io)},
        engine="mnn",
        extra=EXTRA,
        module=module,
        io=io,
        input_names=tuple(inputs),
        output_names_=tuple(outputs),
    )
