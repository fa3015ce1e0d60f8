"""Read a Paddle ``.pdparams`` checkpoint without unpickling arbitrary objects.

``.pdparams`` files are pickles of ``{name: numpy.ndarray}``.  Unpickling them with ``pickle``
would run whatever callable the file names; this reader resolves only the handful of numpy
reconstruction globals, and to harmless stand-ins that record shape and dtype, so a hostile
file can at worst be rejected.  Before anything is unpickled, the opcodes are walked without
building objects: every length the file declares must fit in the file, and containers may nest
at most :data:`MAX_DEPTH` deep.  While reading, array shapes must account for the bytes that
are really there (no zero-filled buffers conjured from a number), the arrays together may not
claim more bytes than the file holds (no buffer counted twice), keys must be strings, and no
untrusted object is ever printed (its text could be exponentially large).  So a hostile file is
refused in milliseconds and cannot make the reader allocate what it does not contain.
Parameters are counted the way upstream reports "Params": BatchNorm running mean/variance
(``._mean``/``._variance``) are not parameters.

>>> info = read_pdparams(Path("picodet_s_416_coco_lcnet.pdparams"))   # doctest: +SKIP
>>> info.params, info.tensors[0]                                      # doctest: +SKIP
(1180000, Tensor(name='backbone.conv1.conv.weight', shape=(16, 3, 3, 3), dtype='float32'))
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
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
#: Deepest nesting of containers a checkpoint may have (a state dict needs about 6).
MAX_DEPTH = 32
#: Most dimensions an array may have (numpy's own limit is 64).
MAX_NDIM = 32
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
        if not isinstance(code, str) or len(code) > 8:  # never str() an untrusted object
            raise CheckpointError("checkpoint declares a dtype that is not a short type code")
        c = code.lstrip("<>|=")
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
        if not isinstance(shape, (tuple, list)) or len(shape) > MAX_NDIM:
            raise CheckpointError("checkpoint declares an array shape that is not a short tuple")
        if not all(type(d) is int and 0 <= d < 1 << 63 for d in shape):
            raise CheckpointError("checkpoint declares an array shape of non-sizes")
        self.shape = tuple(shape)
        self.dtype = dtype
        if len(raw) != math.prod(self.shape) * _ITEMSIZE[dtype.code]:
            raise CheckpointError(
                f"array data of shape {self.shape} is truncated: the shape needs "
                f"{math.prod(self.shape) * _ITEMSIZE[dtype.code]} bytes, the file holds {len(raw)}"
            )
        self.nbytes = len(raw)


def _reconstruct(_cls: Any, _shape: Any, _code: Any) -> _Array:
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, _order: Any = "C") -> _Array:
    if not isinstance(buf, (bytes, bytearray)):  # bytes(<int>) would conjure a zero buffer
        raise CheckpointError("checkpoint array buffer is not bytes, refusing")
    a = _Array()
    a.__setstate__((1, shape, dtype, False, buf))
    return a


def _latin1(text: Any, encoding: Any = "utf-8", _errors: Any = "strict") -> bytes:
    """``_codecs.encode`` as numpy pickles use it (array bytes stored as a latin-1 str)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("checkpoint calls _codecs.encode other than numpy does, refusing")
    return text.encode("latin1")


def _scalar(dtype: Any, _raw: Any = b"") -> None:
    return None


_ALLOWED = {
    ("collections", "OrderedDict"): dict,
    ("_codecs", "encode"): _latin1,
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
    """Names, shapes and dtypes of the arrays in a ``.pdparams`` file, safely.

    Raises :class:`~picozoo.errors.CheckpointError` (exit 6) for anything but a plain state
    dict of arrays that the file really holds.

    >>> read_pdparams(Path("w.pdparams")).params                        # doctest: +SKIP
    276
    """
    data = Path(path).read_bytes()
    try:
        check_opcodes(data)
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e.message}", hint=e.hint) from e
    except Exception as e:  # any malformed pickle
        raise CheckpointError(f"{path} is not a readable .pdparams checkpoint: {_reason(e)}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    info = PdparamsInfo()
    claimed = 0
    for name, value in obj.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{path} has a {type(name).__name__} key, not a tensor name")
        if isinstance(value, _Array) and value.dtype is not None:
            info.tensors.append(Tensor(name, value.shape, value.dtype.name))
            claimed += value.nbytes
    if claimed > len(data):
        raise CheckpointError(
            f"{path}: its arrays claim {claimed} bytes but the file has only {len(data)} "
            "(one buffer counted for several arrays)",
            hint="the file is not a plain Paddle state dict; do not load it",
        )
    return info


def check_opcodes(data: bytes) -> None:
    """Walk a pickle's opcodes without building any object; raise
    :class:`~picozoo.errors.CheckpointError` when a declared length runs past the end of the
    data or containers nest deeper than :data:`MAX_DEPTH`.

    >>> check_opcodes(pickle.dumps({"w": [1, 2]}, protocol=4))
    >>> check_opcodes(b"\\x80\\x04\\x8e" + (3 << 30).to_bytes(8, "little") + b"x.")
    Traceback (most recent call last):
    ...
    picozoo.errors.CheckpointError: declares 3221225472 bytes but only 2 remain in the file \
(the file is truncated or forged; do not load it)
    """
    depth: list[int] = []  # nesting depth of each value on the unpickler's stack
    marks: list[int] = []
    memo: dict[Any, int] = {}
    try:
        for op, arg, _pos in pickletools.genops(data):
            _simulate(op, arg, depth, marks, memo)
    except ValueError as e:  # genops: a length past the end, an unknown opcode, ...
        raise _forged(str(e)) from e
    except IndexError as e:  # the stack or the marks ran out: not a pickle the unpickler takes
        raise _forged("malformed pickle (pops an empty stack)") from e


_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}


def _simulate(op: Any, arg: Any, depth: list[int], marks: list[int], memo: dict[Any, int]) -> None:
    """One opcode's effect on the depths of the stack (see :func:`check_opcodes`)."""
    name = op.name
    if name == "MARK":
        marks.append(len(depth))
    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        memo[len(memo) if name == "MEMOIZE" else arg] = depth[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        depth.append(memo.get(arg, 0))
    elif name == "DUP":
        depth.append(depth[-1])
    else:
        before = op.stack_before
        items: list[int] = []
        if pickletools.markobject in before:
            h = marks.pop()
            items, depth[h:] = depth[h:], []
            before = before[: before.index(pickletools.markobject)]
        if len(before) > len(depth):
            raise IndexError(name)
        fixed = depth[len(depth) - len(before) :]
        del depth[len(depth) - len(before) :]
        if not op.stack_after:
            return
        if name in _MUTATORS:  # the container stays the same object, now holding more
            d = max(fixed[0], 1 + max([*fixed[1:], *items], default=-1))
        else:
            d = 1 + max([*fixed, *items], default=-1)
        if d > MAX_DEPTH:
            raise _forged(f"nests containers more than {MAX_DEPTH} deep")
        depth.extend([d] * len(op.stack_after))


def _forged(why: str) -> CheckpointError:
    if why.startswith("expected "):  # genops: "expected N bytes in a bytes8, but only M remain"
        words = why.split()
        why = f"declares {words[1]} bytes but only {words[-2]} remain in the file"
    return CheckpointError(why, hint="the file is truncated or forged; do not load it")


def _reason(e: BaseException) -> str:
    """``e`` as a short line, without ever printing untrusted objects in its arguments."""
    if all(isinstance(a, (str, int)) for a in e.args):
        return " ".join(str(e).split())[:200] or type(e).__name__
    return type(e).__name__
