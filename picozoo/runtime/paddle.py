"""Paddle Inference adapter (CPU).

Speed settings (bench, infer, eval): Paddle Inference set up as PaddleDetection's own deploy
code sets it up (``deploy/python/infer.py``, ``load_predictor`` on CPU with ``--enable_mkldnn
True``), switch for switch: CPU math library threads = N, oneDNN (MKLDNN) on with a cache of
10 input shapes, IR optimisation on (Paddle's default: upstream does not switch it), glog info
off, memory optimisation on (not on PIR models: see :func:`make_config`), no feed/fetch ops
(zero-copy handles); no pass deleted (upstream deletes ``shuffle_channel_detect_pass`` only
for its TensorRT action models). Reference settings (parity): oneDNN off, the plain kernels,
the other switches as above. Every switch is read back from the predictor's
:class:`paddle.inference.Config` into the runtime's settings (the bench cell's
``engine_settings``).

A run binds each input to the caller's array without copying it (``share_external_data``;
an array that is not C-contiguous and writable is copied once into one that is), runs, and
copies every output out. The same arrays given again (the same objects, address, shape and
dtype: a bench cell's repeated calls) stay bound as they are, as upstream's inputs stay copied
in; their in-place changes are seen, since nothing was copied. Upstream's timed loop
(``Detector.predict``) is run + copy out, its inputs copied in once before timing; the bench
times the whole run here, the check of the binding included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capture import captured_output
from ..errors import EngineError, require
from ..paddle_dir import find_paddle_model
from .base import Runtime, TensorInfo, short_error

_DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "int8", "bool")


@dataclass
class PaddleRuntime(Runtime):
    predictor: Any = None
    _handles: tuple[list[tuple[str, Any]], list[Any]] | None = None
    #: the (caller's array, tensor) pairs the input handles point into (kept alive while bound)
    _bound: list[tuple[Any, Any]] | None = None
    #: what the bound arrays were (:func:`_binding_key`): the same arrays are not bound again
    _bound_key: list[tuple[Any, ...] | None] | None = None

    @property
    def version(self) -> str:
        return str(require("paddle", "convert", package="paddlepaddle").__version__)

    def inputs(self) -> list[TensorInfo]:
        out = []
        for n in self.predictor.get_input_names():
            dtype = _dtype(self.predictor.get_input_handle(n).type())
            lname = n.lower()
            # Paddle reports no shape before the first reshape: PicoDet's inputs are an NCHW
            # image and [N, 2] scale_factor / im_shape
            shape: list[Any] = (
                [None, 2]
                if "scale_factor" in lname or lname == "im_shape"
                else [None, 3, None, None]
            )
            out.append(TensorInfo(n, shape, dtype))
        return out

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(n, [], "float32") for n in self.predictor.get_output_names()]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        if self._handles is None:  # looked up once: the bench times every run()
            p = self.predictor
            self._handles = (
                [(n, p.get_input_handle(n)) for n in p.get_input_names()],
                [p.get_output_handle(n) for n in p.get_output_names()],
            )
        inputs, outputs = self._handles
        missing = [n for n, _ in inputs if n not in feeds]
        if missing:
            raise EngineError(f"Paddle model input {missing[0]!r} was not given")
        key = [_binding_key(feeds[n]) for n, _ in inputs]
        if self._bound is None or None in key or key != self._bound_key:
            bound = []
            for n, h in inputs:
                tensor = _zero_copy(feeds[n])
                h.share_external_data(tensor)
                bound.append((feeds[n], tensor))
            # keep the caller's arrays too: their ids stay theirs while bound
            self._bound, self._bound_key = bound, key
        self.predictor.run()
        return [h.copy_to_cpu() for h in outputs]


def probe_program(model_file: Path) -> list[str]:
    """The op types of ``model_file``, read without Paddle; raise :class:`EngineError` (exit 13)
    for a file that is not a Paddle program, which would crash Paddle Inference (SIGSEGV on
    random bytes as ``model.pdmodel``)."""
    from ..paddle_program import ProgramError, program_ops

    try:
        return program_ops(model_file)
    except (ProgramError, OSError) as e:
        raise EngineError(
            f"Paddle Inference cannot load {model_file}: {e}",
            hint="the file is damaged or not a Paddle inference model: pull or export it again",
        ) from e


def _zero_copy(array: Any) -> Any:
    """A Paddle CPU tensor over ``array``'s memory (no copy); an array Paddle cannot share (not
    C-contiguous, or read-only: DLPack cannot say so) is first copied into one it can."""
    import numpy as np
    from paddle.utils.dlpack import from_dlpack

    a = np.asarray(array)
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = np.array(a, order="C")
    return from_dlpack(a)


def _binding_key(array: Any) -> tuple[Any, ...] | None:
    """What makes a bound input the same binding: the very array object, at the same address,
    shape, strides and dtype, shared without a copy (its later in-place changes are seen). None
    for an array that :func:`_zero_copy` copies (a copy would go stale): always bound again.

    >>> import numpy as np
    >>> a = np.zeros((2, 4), "float32")
    >>> _binding_key(a) == _binding_key(a), _binding_key(a) == _binding_key(a.copy())
    (True, False)
    >>> _binding_key(a[:, ::2]) is None
    True
    """
    flags = getattr(array, "flags", None)
    if flags is None or not (flags.c_contiguous and flags.writeable):
        return None
    address = array.__array_interface__["data"][0]
    return (id(array), address, array.shape, array.strides, str(array.dtype))


def _dtype(t: Any) -> str:
    name = str(t).rsplit(".", 1)[-1].lower()
    return name if name in _DTYPES else "float32"


#: what the speed settings are: upstream's deploy predictor, switch for switch
AS_UPSTREAM = "PaddleDetection deploy/python/infer.py load_predictor (CPU, --enable_mkldnn True)"
#: oneDNN's cache of input shapes, as upstream sets it ("to avoid memory leak")
MKLDNN_CACHE_CAPACITY = 10


def make_config(cfg: Any, threads: int, reference: bool, *, pir: bool = False) -> Any:
    """Set ``cfg`` (a :class:`paddle.inference.Config`) up for CPU: upstream's deploy settings
    (see the module docstring), or the reference kernels (oneDNN off).

    ``pir``: the model is a PIR program (``model.json``). Paddle 3.2.2 cannot create a predictor
    for one with memory optimisation switched on ("Not find ... memory_optimize_pass", and so
    neither can upstream's load_predictor): it stays at Paddle's default for PIR (off)."""
    cfg.disable_gpu()
    cfg.set_cpu_math_library_num_threads(threads)
    if reference:
        cfg.disable_mkldnn()
    else:
        cfg.set_mkldnn_cache_capacity(MKLDNN_CACHE_CAPACITY)
        cfg.enable_mkldnn()
    cfg.disable_glog_info()
    if not pir:
        cfg.enable_memory_optim()
    cfg.switch_use_feed_fetch_ops(False)
    return cfg


def config_settings(cfg: Any) -> dict[str, Any]:
    """Every switch :func:`make_config` sets, read back from the Config (the cache capacity
    and memory optimisation have no getter: they are read from its summary table)."""
    table = _summary(cfg)
    return {
        "mkldnn_enabled": bool(cfg.mkldnn_enabled()),
        "mkldnn_cache_capacity": _int(table.get("mkldnn_cache_capacity")),
        "cpu_math_library_num_threads": int(cfg.cpu_math_library_num_threads()),
        "ir_optim": bool(cfg.ir_optim()),
        "memory_optim": _bool(table.get("memory_optim")),
        "use_feed_fetch_ops": bool(cfg.use_feed_fetch_ops_enabled()),
        "glog_info_disabled": bool(cfg.glog_info_disabled()),
        "use_gpu": bool(cfg.use_gpu()),
    }


def _summary(cfg: Any) -> dict[str, str]:
    """``Config.summary()``'s table (``| option | value |`` rows) as a dict.

    >>> class C:
    ...     def summary(self):
    ...         return "+--+\\n| memory_optim   | true |\\n| mkldnn_cache_capacity | 10 |\\n"
    >>> _summary(C())
    {'memory_optim': 'true', 'mkldnn_cache_capacity': '10'}
    """
    out = {}
    for line in str(cfg.summary()).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0]:
            out[cells[0]] = cells[1]
    return out


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None


def _bool(text: str | None) -> bool | None:
    return {"true": True, "false": False}.get((text or "").strip().lower())


def open_model(
    path: Path, *, threads: int, precision: str, reference: bool, pipelined: bool = False
) -> PaddleRuntime:
    files = find_paddle_model(path)
    probe_program(files.model_file)
    require("paddle", "convert", package="paddlepaddle")
    from paddle import inference

    params = str(files.params_file) if files.params_file else ""
    with captured_output():  # paddle prints its own logs on stdout
        pir = files.format == "pir"
        cfg = make_config(
            inference.Config(str(files.model_file), params), threads, reference, pir=pir
        )
        try:
            predictor = inference.create_predictor(cfg)
        except Exception as e:  # paddle raises ValueError/RuntimeError/its own types
            error: Exception | None = e
        else:
            error = None
    if error is not None:
        raise EngineError(
            f"Paddle Inference cannot load {files.model_file.name}: {short_error(error)}",
            hint="check the model loads with paddle.inference",
        ) from error
    settings = {
        **config_settings(cfg),
        "config_as": ("reference: oneDNN off" if reference else AS_UPSTREAM)
        + ("; memory optimisation off (a PIR model: Paddle cannot run it)" if pir else ""),
        "model_file": files.model_file.name,
        "timed": (
            "share_external_data (inputs, no copy; the same arrays stay bound) + run"
            " + copy_to_cpu (every output)"
        ),
    }
    return PaddleRuntime(
        path=files.model_file,
        threads=threads,
        precision=precision,
        settings=settings,
        engine="paddle",
        extra="convert",
        predictor=predictor,
    )
