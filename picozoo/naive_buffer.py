"""A Paddle-Lite ``.nb`` read without Paddle-Lite: no ARM code is run, nothing is imported.

The ``.nb`` ("naive buffer") file that ``paddle_lite_opt`` writes (meta versions 1 and 2, every
Paddle-Lite since 2.7) is::

    uint16 meta_version | char[16] opt_version | uint64 topo_size | topology | params

The topology is a flatbuffer ``ProgramDesc`` (Paddle-Lite's ``framework.fbs``: blocks of vars
and ops; each op's chosen kernel is its ``__@kernel_type_attr@__`` attribute,
``op/alias/target/precision/layout`` with Paddle-Lite's enum numbers). Meta version 2 stores
the params after it as ``uint16 version, uint16 meta size, meta, uint16 header size, uint16
count, uint32 largest tensor`` then, per param, ``uint32 total, uint32 offset`` and a flatbuffer
``ParamDesc`` (name, dims, data type, data); meta version 1 stores one flatbuffer
``CombinedParamsDesc``. :func:`read_nb` reads all of it with a minimal flatbuffer reader.

>>> TARGETS[4], PRECISIONS[5], kernel_place("conv2d/def/4/5/1")
('arm', 'fp16', ('arm', 'fp16'))
>>> read_nb(b"PK\\x03\\x04 this is a zip file, not a model")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
picozoo.errors.ModelFileError: not a Paddle-Lite .nb: meta version 19280 (...)
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelFileError

__all__ = ["PRECISIONS", "TARGETS", "NbModel", "NbVar", "kernel_place", "read_nb", "read_nb_file"]

#: Paddle-Lite's TargetType and PrecisionType enums (lite/api/paddle_place.h)
TARGETS = {0: "unk", 1: "host", 2: "x86", 3: "cuda", 4: "arm", 5: "opencl", 6: "any"}
TARGETS.update({7: "fpga", 8: "npu", 9: "xpu", 10: "bm", 11: "mlu", 12: "rknpu"})
TARGETS.update({13: "apu", 14: "huawei_ascend_npu", 15: "imagination_nna"})
TARGETS.update({16: "intel_fpga", 17: "metal", 18: "nnadapter"})
PRECISIONS = {0: "unk", 1: "float", 2: "int8", 3: "int32", 4: "any", 5: "fp16", 6: "bool"}
PRECISIONS.update({7: "int64", 8: "int16", 9: "uint8", 10: "fp64"})
#: Paddle's VarType data types (framework.proto)
DATA_TYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32"}
DATA_TYPES.update({6: "float64", 20: "uint8", 21: "int8"})
KERNEL_ATTR = "__@kernel_type_attr@__"
HEADER = 2 + 16 + 8
_HINT = "give a .nb written by paddle_lite_opt (Paddle-Lite >= 2.7)"


def kernel_place(kernel: str) -> tuple[str, str] | None:
    """``(target, precision)`` of a kernel string ``op/alias/target/precision/layout``."""
    parts = kernel.split("/")
    if len(parts) < 5 or not (parts[-3].isdigit() and parts[-2].isdigit()):
        return None
    target, precision = int(parts[-3]), int(parts[-2])
    return TARGETS.get(target, str(target)), PRECISIONS.get(precision, str(precision))


class _Fb:
    """The few flatbuffer reads the two schemas need (little-endian, offsets from the field)."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def _u(self, fmt: str, pos: int) -> Any:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise ValueError(f"offset {pos} out of the buffer")
        return struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def root(self) -> int:
        return int(self._u("I", 0))

    def field(self, table: int, slot: int) -> int:
        """The position of field ``slot`` of ``table``, 0 when absent."""
        vtable = table - self._u("i", table)
        size = self._u("H", vtable)
        if 4 + 2 * slot >= size:
            return 0
        off = self._u("H", vtable + 4 + 2 * slot)
        return table + off if off else 0

    def scalar(self, table: int, slot: int, fmt: str, default: Any = 0) -> Any:
        pos = self.field(table, slot)
        return self._u(fmt, pos) if pos else default

    def ref(self, table: int, slot: int) -> int:
        pos = self.field(table, slot)
        return pos + self._u("I", pos) if pos else 0

    def string(self, table: int, slot: int) -> str | None:
        pos = self.ref(table, slot)
        if not pos:
            return None
        n = self._u("I", pos)
        return self.buf[pos + 4 : pos + 4 + n].decode("utf-8", "replace")

    def vector(self, table: int, slot: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        pos = self.ref(table, slot)
        return (pos + 4, self._u("I", pos)) if pos else (0, 0)

    def tables(self, table: int, slot: int) -> list[int]:
        start, n = self.vector(table, slot)
        return [start + 4 * i + self._u("I", start + 4 * i) for i in range(n)]

    def strings(self, table: int, slot: int) -> list[str]:
        out = []
        for p in self.tables(table, slot):
            n = self._u("I", p)
            out.append(self.buf[p + 4 : p + 4 + n].decode("utf-8", "replace"))
        return out

    def scalars(self, table: int, slot: int, fmt: str) -> list[Any]:
        start, n = self.vector(table, slot)
        width = struct.calcsize(fmt)
        if start + n * width > len(self.buf):
            raise ValueError("vector out of the buffer")
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start)) if n else []


@dataclass(frozen=True)
class NbVar:
    """A variable of the program: name, dims (-1: any), data type, persistable (a weight)."""

    name: str
    dims: list[int]
    dtype: str
    persistable: bool


@dataclass
class NbModel:
    """What a ``.nb`` holds (see the module docstring)."""

    meta_version: int
    opt_version: str
    ops: list[str] = field(default_factory=list)  #: op types in program order (block 0)
    kernels: list[str] = field(default_factory=list)  #: each op's kernel string
    vars: dict[str, NbVar] = field(default_factory=dict)
    feeds: list[str] = field(default_factory=list)  #: input names, in feed order
    fetches: list[str] = field(default_factory=list)  #: output names, in fetch order
    params: int = 0  #: number of weight tensors
    param_elements: int = 0  #: their elements (the model's parameter count)
    param_bytes: int = 0
    param_dtypes: dict[str, int] = field(default_factory=dict)  #: tensors per data type

    @property
    def places(self) -> dict[str, int]:
        """Kernels counted by ``target/precision`` (e.g. ``{"arm/fp16": 221, ...}``)."""
        counts: Counter[str] = Counter()
        for k in self.kernels:
            place = kernel_place(k)
            if place is not None:
                counts["/".join(place)] += 1
        return dict(counts.most_common())

    @property
    def targets(self) -> list[str]:
        """The compute targets of the kernels (``host``, the portable glue, left out unless it
        is the only one)."""
        found = sorted({p.split("/")[0] for p in self.places})
        return [t for t in found if t not in ("host", "any")] or found

    @property
    def fp16_kernels(self) -> int:
        return sum(n for k, n in self.places.items() if k.endswith("/fp16"))

    def input_shapes(self) -> dict[str, list[int]]:
        return {n: list(self.vars[n].dims) if n in self.vars else [] for n in self.feeds}

    def to_dict(self) -> dict[str, Any]:
        ops = Counter(self.ops)
        return {
            "format": "paddle-lite-nb",
            "meta_version": self.meta_version,
            "opt_version": self.opt_version,
            "targets": self.targets,
            "kernels": self.places,
            "fp16_kernels": self.fp16_kernels,
            "ops": len(self.ops),
            "op_types": dict(ops.most_common()),
            "inputs": {n: self.input_shapes()[n] for n in self.feeds},
            "outputs": list(self.fetches),
            "params": self.params,
            "param_elements": self.param_elements,
            "param_bytes": self.param_bytes,
            "param_dtypes": dict(self.param_dtypes),
        }


def read_nb_file(path: Path) -> NbModel:
    """:func:`read_nb` of the file at ``path`` (errors name the file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        return read_nb(data)
    except ModelFileError as e:
        raise ModelFileError(f"{Path(path).name}: {e.message}", hint=e.hint) from e


def read_nb(data: bytes) -> NbModel:
    """Parse a ``.nb``; raises :class:`~picozoo.errors.ModelFileError` on anything else or a
    damaged file."""
    if len(data) < HEADER:
        raise ModelFileError(f"not a Paddle-Lite .nb: {len(data)} bytes", hint=_HINT)
    meta, raw_version, topo_size = struct.unpack_from("<H16sQ", data, 0)
    if meta not in (1, 2):
        raise ModelFileError(f"not a Paddle-Lite .nb: meta version {meta}", hint=_HINT)
    if HEADER + topo_size > len(data):
        raise ModelFileError(
            f"damaged .nb: topology of {topo_size} bytes, file of {len(data)}", hint=_HINT
        )
    version = raw_version.split(b"\0", 1)[0].decode("ascii", "replace")
    model = NbModel(meta, version)
    try:
        _read_program(_Fb(data[HEADER : HEADER + topo_size]), model)
        rest = data[HEADER + topo_size :]
        if meta == 2:
            _read_params_v2(rest, model)
        else:
            fb = _Fb(rest)
            for p in fb.tables(fb.root(), 0):
                _add_param(fb, p, model)
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        raise ModelFileError(f"damaged .nb: {e}", hint=_HINT) from e
    return model


def _read_program(fb: _Fb, model: NbModel) -> None:
    blocks = fb.tables(fb.root(), 0)
    if not blocks:
        raise ValueError("the program has no block")
    block = blocks[0]
    for v in fb.tables(block, 2):
        name = fb.string(v, 0) or ""
        vtype = fb.ref(v, 1)
        dims: list[int] = []
        dtype = ""
        lod = fb.ref(vtype, 2) if vtype else 0
        tensor = fb.ref(lod, 0) if lod else 0
        if tensor:
            dims = [int(d) for d in fb.scalars(tensor, 1, "q")]
            dtype = DATA_TYPES.get(fb.scalar(tensor, 0, "i"), "")
        model.vars[name] = NbVar(name, dims, dtype, bool(fb.scalar(v, 2, "B")))
    feeds: list[tuple[int, str]] = []
    fetches: list[tuple[int, str]] = []
    for op in fb.tables(block, 3):
        kind = fb.string(op, 0) or ""
        kernel, col = "", len(feeds) + len(fetches)
        for a in fb.tables(op, 3):
            attr = fb.string(a, 0)
            if attr == KERNEL_ATTR:
                kernel = fb.string(a, 4) or ""
            elif attr == "col":
                col = int(fb.scalar(a, 2, "i"))
        if kind == "feed":
            feeds += [(col, n) for n in _args(fb, op, 2, "Out")]
        elif kind == "fetch":
            fetches += [(col, n) for n in _args(fb, op, 1, "X")]
        model.ops.append(kind)
        model.kernels.append(kernel)
    model.feeds = [n for _, n in sorted(feeds)]  # in the order of their "col" attribute
    model.fetches = [n for _, n in sorted(fetches)]


def _args(fb: _Fb, op: int, slot: int, parameter: str) -> list[str]:
    out: list[str] = []
    for var in fb.tables(op, slot):
        if fb.string(var, 0) == parameter:
            out += fb.strings(var, 1)
    return out


def _read_params_v2(rest: bytes, model: NbModel) -> None:
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        value = struct.unpack_from("<" + fmt, rest, pos)[0]
        pos += struct.calcsize(fmt)
        return int(value)

    if take("H") != 0:
        raise ValueError("params of an unknown version")
    meta = take("H")  # reserved meta information
    pos += meta
    header = take("H")
    count = struct.unpack_from("<H", rest, pos)[0]
    pos += header
    for _ in range(count):
        total, offset = take("I"), take("I")
        start = pos + offset - 4
        end = pos + total - 4
        if offset < 4 or end > len(rest) or start > end:
            raise ValueError("a param runs past the end of the file")
        fb = _Fb(rest[start:end])
        _add_param(fb, fb.root(), model)
        pos = end


def _add_param(fb: _Fb, param: int, model: NbModel) -> None:
    # ParamDesc: version, name, variable_type (union tag), variable (LoDTensorDesc)
    tensor = fb.ref(param, 3)
    if not tensor:
        return
    dims = fb.scalars(tensor, 2, "q")
    elements = 1
    for d in dims:
        elements *= int(d)
    dtype = DATA_TYPES.get(fb.scalar(tensor, 3, "i"), "unknown")
    _start, nbytes = fb.vector(tensor, 4)
    model.params += 1
    model.param_elements += elements
    model.param_bytes += nbytes
    model.param_dtypes[dtype] = model.param_dtypes.get(dtype, 0) + 1
