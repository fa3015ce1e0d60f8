"""Read a Paddle ``.pdparams`` checkpoint without unpickling arbitrary objects.

``.pdparams`` files are pickles of ``{name: numpy.ndarray}``.  Unpickling them with ``pickle``
would run whatever callable the file names; this reader resolves only the handful of numpy
reconstruction globals, and to harmless stand-ins that record shape and dtype, so a hostile
file can at worst be rejected.  Parameters are counted the way upstream reports "Params":
BatchNorm running mean/variance (``._mean``/``._variance``) are not parameters.

>>> info = read_pdparams(Path("picodet_s_416_coco_lcnet.pdparams"))   # doctest: +SKIP
>>> info.params, info.tensors[0]                                      # doctest: +SKIP
(1180000, Tensor(name='backbone.conv1.conv.weight', shape=(16, 3, 3, 3), dtype='float32'))
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

#: Suffixes of BatchNorm running statistics (Paddle, and PyTorch-style names for safety).
BN_STAT_SUFFIXES = ("._mean", "._variance", ".running_mean", ".running_var")
_DTYPES = {
    "f2": "float16", "f4": "float32", "f8": "float64", "i1": "int8", "i2": "int16",
    "i4": "int32", "i8": "int64", "u1": "uint8", "u2": "uint16", "u4": "uint32",
    "u8": "uint64", "b1": "bool", "c8": "complex64", "c16": "complex128",
}  # fmt: skip
_ITEMSIZE = {"f2": 2, "f4": 4, "f8": 8, "i1": 1, "i2": 2, "i4": 4, "i8": 8, "u1": 1, "u2": 2,
             "u4": 4, "u8": 8, "b1": 1, "c8": 8, "c16": 16}  # fmt: skip


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class PdparamsInfo:
    """Tensor names/shapes/dtypes of a checkpoint and its parameter count."""

    tensors: list[Tensor] = field(default_factory=list)

    @property
    def params(self) -> int:
        """Number of parameters, excluding BatchNorm running statistics (upstream's Params)."""
        return sum(t.numel for t in self.tensors if not t.name.endswith(BN_STAT_SUFFIXES))

    @property
    def total(self) -> int:
        return sum(t.numel for t in self.tensors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "total_elements": self.total,
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.tensors
            ],
        }


class _Dtype:
    def __init__(self, code: Any = "f4", *_: Any) -> None:
        c = str(code).lstrip("<>|=")
        if c not in _DTYPES:
            raise CheckpointError(f"unsupported dtype {code!r} in checkpoint")
        self.code = c
        self.name = _DTYPES[c]

    def __setstate__(self, state: Any) -> None:
        pass


class _Array:
    def __init__(self, *_: Any) -> None:
        self.shape: tuple[int, ...] = ()
        self.dtype: _Dtype | None = None
        self.nbytes = 0

    def __setstate__(self, state: Any) -> None:
        try:
            _version, shape, dtype, _fortran, raw = state
        except (TypeError, ValueError):
            raise CheckpointError("malformed array state in checkpoint") from None
        if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
            raise CheckpointError("checkpoint holds an array of objects, refusing")
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        if len(raw) != math.prod(self.shape) * _ITEMSIZE[dtype.code]:
            raise CheckpointError(f"array data of shape {self.shape} is truncated")
        self.nbytes = len(raw)


def _reconstruct(_cls: Any, _shape: Any, _code: Any) -> _Array:
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, _order: Any = "C") -> _Array:
    a = _Array()
    a.__setstate__((1, shape, dtype, False, bytes(buf)))
    return a


def _scalar(dtype: Any, _raw: Any = b"") -> None:
    return None


_ALLOWED = {
    ("collections", "OrderedDict"): dict,
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): _Array,
    ("numpy", "dtype"): _Dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    _ALLOWED[(_mod, "scalar")] = _scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError as e:
            raise CheckpointError(
                f"checkpoint asks to load {module}.{name}, which a weights file never needs",
                hint="the file is not a plain Paddle state dict; do not load it with pickle",
            ) from e

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("checkpoint uses persistent ids, refusing")


def read_pdparams(path: Path) -> PdparamsInfo:
    """Names, shapes and dtypes of the arrays in a ``.pdparams`` file, safely."""
    data = Path(path).read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except CheckpointError:
        raise
    except Exception as e:  # any malformed pickle
        raise CheckpointError(f"{path} is not a readable .pdparams checkpoint: {e}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    info = PdparamsInfo()
    for name, value in obj.items():
        if isinstance(value, _Array) and value.dtype is not None:
            info.tensors.append(Tensor(str(name), value.shape, value.dtype.name))
    return info
