"""Read the op types of a Paddle program without Paddle: a probe before native code loads it.

Paddle Inference and paddle2onnx trust the program file: 5 KB of random bytes as
``model.pdmodel`` crash Paddle Inference (SIGSEGV). :func:`program_ops` walks the file first:

* ``model.pdmodel`` (legacy): the protobuf wire format of Paddle's ``ProgramDesc`` (``blocks``
  = 1, ``version`` = 4, ``op_version_map`` = 5; a block's ``idx`` = 1, ``parent_idx`` = 2,
  ``vars`` = 3, ``ops`` = 4; an op's ``type`` = 3), checked field by field: every wire type
  and length must fit, the required fields must be there, and the first block must hold the
  ``feed`` and ``fetch`` ops every inference program has;
* ``model.json`` (PIR): JSON with ``base_code.magic == "pir"`` and the ops of
  ``program.regions[].blocks[].ops[]``.

:func:`quantized_ops` then tells a model quantized by PaddleSlim (``quantize_linear`` /
``dequantize_linear``, ``fake_quantize_*``), which paddle2onnx 2.1.0 cannot convert (it aborts).

>>> blob = _message(1, b"\\x08\\x00\\x10\\x00" + _op("feed") + _op("fetch"))
>>> legacy_ops(blob)
['feed', 'fetch']
>>> legacy_ops(b"\\x0f" * 64)
Traceback (most recent call last):
...
picozoo.paddle_program.ProgramError: not a Paddle ProgramDesc (field 1, wire type 7 at byte 0)
>>> quantized_ops(["feed", "quantize_linear", "conv2d", "dequantize_linear", "fetch"])
['dequantize_linear', 'quantize_linear']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

#: the largest program file read (upstream's are < 2 MB; the weights are in ``.pdiparams``)
MAX_PROGRAM_BYTES = 256 * 1024 * 1024
_OP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class ProgramError(ValueError):
    """The file is not a Paddle program (callers turn this into their own error)."""


def program_ops(model_file: Path) -> list[str]:
    """The op types of the program in ``model_file`` (``.pdmodel`` or PIR ``.json``), in order.

    Raises :class:`ProgramError` for a file that is not one, ``OSError`` when it cannot be read.
    """
    model_file = Path(model_file)
    size = model_file.stat().st_size
    if size > MAX_PROGRAM_BYTES:
        raise ProgramError(f"{size} bytes: larger than any Paddle program ({MAX_PROGRAM_BYTES})")
    data = model_file.read_bytes()
    return pir_ops(data) if model_file.suffix == ".json" else legacy_ops(data)


def quantized_ops(ops: list[str]) -> list[str]:
    """The quantization ops among ``ops`` (PaddleSlim's ``quantize_linear`` / ``dequantize_linear``
    pairs, the older ``fake_quantize_*`` / ``fake_dequantize_*`` ops), sorted, each once."""
    return sorted({op.rsplit(".", 1)[-1] for op in ops if "quantize" in op})


def legacy_ops(data: bytes) -> list[str]:
    """The op types of a serialized ``ProgramDesc`` (see the module docstring)."""
    ops: list[str] = []
    blocks = 0
    for field, value in _fields(data, 0, len(data), {1: 2, 4: 2, 5: 2}):
        if field == 1:
            assert isinstance(value, tuple)
            ops += _block(data, *value, first=blocks == 0)
            blocks += 1
    if blocks == 0:
        raise ProgramError("not a Paddle ProgramDesc (no block)")
    return ops


def pir_ops(data: bytes) -> list[str]:
    """The op names of a PIR program (``model.json``), without their dialect prefix number."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ProgramError(f"not a PIR program (JSON: {str(e)[:100]})") from None
    base = doc.get("base_code") if isinstance(doc, dict) else None
    if not isinstance(base, dict) or base.get("magic") != "pir":
        raise ProgramError("not a PIR program (no base_code.magic 'pir')")
    program = doc.get("program")
    regions = program.get("regions") if isinstance(program, dict) else None
    if not isinstance(regions, list) or not regions:
        raise ProgramError("not a PIR program (no program.regions)")
    ops: list[str] = []
    for region in regions:
        blocks = region.get("blocks") if isinstance(region, dict) else None
        if not isinstance(blocks, list):
            raise ProgramError("not a PIR program (a region without blocks)")
        for block in blocks:
            block_ops = block.get("ops") if isinstance(block, dict) else None
            if not isinstance(block_ops, list):
                raise ProgramError("not a PIR program (a block without ops)")
            for op in block_ops:
                name = op.get("#") if isinstance(op, dict) else None
                if not isinstance(name, str):
                    raise ProgramError("not a PIR program (an op without a name)")
                ops.append(name.split(".", 1)[-1] if "." in name else name)
    return ops


def _block(data: bytes, start: int, end: int, *, first: bool) -> list[str]:
    ops: list[str] = []
    seen: set[int] = set()
    for field, value in _fields(data, start, end, {1: 0, 2: 0, 3: 2, 4: 2, 5: 0}):
        seen.add(field)
        if field == 4:
            assert isinstance(value, tuple)
            ops.append(_op_type(data, *value))
        elif field == 3:
            assert isinstance(value, tuple)
            _var(data, *value)
    if not {1, 2} <= seen:
        raise ProgramError("not a Paddle ProgramDesc (a block without its idx)")
    if first and not {"feed", "fetch"} <= set(ops):
        raise ProgramError("not a Paddle inference program (no feed/fetch ops)")
    return ops


def _op_type(data: bytes, start: int, end: int) -> str:
    name = None
    for field, value in _fields(data, start, end, {1: 2, 2: 2, 3: 2, 4: 2, 5: 0}):
        if field == 3:
            assert isinstance(value, tuple)
            name = _text(data, *value)
    if name is None or not _OP_NAME.fullmatch(name):
        raise ProgramError(f"not a Paddle ProgramDesc (an op type {name!r})")
    return name


def _var(data: bytes, start: int, end: int) -> None:
    seen = {field for field, _ in _fields(data, start, end, {1: 2, 2: 2, 3: 0, 4: 0, 5: 0,
                                                              6: 0, 7: 2})}  # fmt: skip
    if not {1, 2} <= seen:
        raise ProgramError("not a Paddle ProgramDesc (a variable without a name or type)")


def _text(data: bytes, start: int, end: int) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProgramError("not a Paddle ProgramDesc (a name that is not UTF-8)") from None


def _fields(
    data: bytes, start: int, end: int, allowed: dict[int, int]
) -> Iterator[tuple[int, int | tuple[int, int]]]:
    """``(field, value)`` of one message: an int (varint) or the ``(start, end)`` of a length-
    delimited value. ``allowed``: the fields read -> their wire type (0 varint, 2 length);
    other fields (a newer Paddle's) are skipped, but their wire types and lengths must fit."""
    pos = start
    while pos < end:
        at = pos
        key, pos = _varint(data, pos, end)
        field, wire = key >> 3, key & 7
        expected = allowed.get(field)
        if field == 0 or wire not in _SIZES or (expected is not None and expected != wire):
            raise ProgramError(
                f"not a Paddle ProgramDesc (field {field}, wire type {wire} at byte {at})"
            )
        if wire == 0:
            number, pos = _varint(data, pos, end)
            if expected is not None:
                yield field, number
            continue
        length = _SIZES[wire]
        if wire == 2:
            length, pos = _varint(data, pos, end)
        if pos + length > end:
            raise ProgramError(f"not a Paddle ProgramDesc (truncated at byte {at})")
        if expected is not None:
            yield field, (pos, pos + length)
        pos += length


#: bytes of a fixed-size wire type (1: 64-bit, 5: 32-bit; 0 varint and 2 length are read)
_SIZES = {0: 0, 1: 8, 2: 0, 5: 4}


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ProgramError(f"not a Paddle ProgramDesc (a bad varint before byte {pos})")


def _message(field: int, payload: bytes) -> bytes:
    """A length-delimited field (for the doctests)."""
    return bytes([field << 3 | 2, len(payload)]) + payload


def _op(name: str) -> bytes:
    return _message(4, _message(3, name.encode()))
