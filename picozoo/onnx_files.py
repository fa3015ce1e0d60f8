"""ONNX external data: check where a model's tensors live before onnx or onnxruntime read them.

An ONNX file may keep tensors in other files ("external data"), each named by a ``location``
relative to the model's folder. onnx >= 1.16.2 (CVE-2024-5187) and onnxruntime refuse absolute
and ``..`` locations, but both follow a symlink in the model's folder, so a model next to a
planted ``weights.bin -> /home/user/.ssh/id_rsa`` makes them read (and ``inspect`` report on)
a file outside it. :func:`check_external_data` reads the model's protobuf itself (no onnx
needed, nothing loaded) and refuses any location that is empty, absolute, contains ``..``,
resolves outside the model's folder (through a symlink) or is not a regular file. picozoo calls
it on every ONNX file before onnx or onnxruntime opens it: ``inspect``, ``verify --deep``, the
runtime (bench, parity) and so the inputs of ``convert``.

>>> check_external_data(Path("model.onnx"))                          # doctest: +SKIP
>>> check_external_data(Path("evil/model.onnx"))                     # doctest: +SKIP
Traceback (most recent call last):
...
picozoo.errors.ModelFileError: evil/model.onnx: tensor 'w' keeps its data in 'w.bin', which \
resolves outside the model's folder (to /etc/passwd) ...
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import ModelFileError

#: Message -> {field number: message type of that field}, for the fields that can hold tensors
#: (from onnx.proto; every other field is skipped).
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}
_TENSOR_NAME, _ENTRY_KEY, _ENTRY_VALUE = 8, 1, 2


def external_locations(path: Path) -> list[tuple[str, str]]:
    """``(tensor name, location)`` of every tensor of the ONNX file at ``path`` whose data is
    stored elsewhere (``[]`` for a self-contained model, and for a file that is not a valid
    protobuf, which onnx refuses anyway).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> tensor = b"\\x42\\x01w" + b"\\x6a\\x0f" + b"\\x0a\\x08location" + b"\\x12\\x03w.b"
    >>> graph = b"\\x2a" + bytes([len(tensor)]) + tensor
    >>> _ = (d / "m.onnx").write_bytes(b"\\x3a" + bytes([len(graph)]) + graph)
    >>> external_locations(d / "m.onnx")
    [('w', 'w.b')]
    >>> import shutil; shutil.rmtree(d)
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                return list(_walk(view))
            except (ValueError, RecursionError):  # not a valid protobuf: onnx refuses it too
                return []
            finally:
                view.release()


def check_external_data(path: Path) -> None:
    """Refuse an ONNX file whose external data would be read from outside its folder.

    Raises :class:`~picozoo.errors.ModelFileError` (exit 2) naming the tensor and location
    when a location is empty, absolute, contains ``..``, resolves outside the model's folder
    (a symlink), or is missing or not a regular file. A self-contained model passes untouched.

    >>> check_external_data(Path("/nonexistent/model.onnx"))
    Traceback (most recent call last):
    ...
    picozoo.errors.ModelFileError: /nonexistent/model.onnx: no such file (give an .onnx file)
    """
    path = Path(path)
    try:
        found = external_locations(path)
    except FileNotFoundError as e:
        raise ModelFileError(f"{path}: no such file", hint="give an .onnx file") from e
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read it: {e.strerror or e}") from e
    folder = path.parent
    real_folder = os.path.realpath(folder)
    for name, location in found:
        problem = _location_problem(folder, real_folder, location)
        if problem:
            raise ModelFileError(
                f"{path}: tensor {name!r} keeps its data in {location!r}, which {problem}",
                hint="external data must be regular files inside the model's folder; "
                "only use models from sources you trust",
            )


def _location_problem(folder: Path, real_folder: str, location: str) -> str | None:
    parts = location.replace("\\", "/").split("/")
    if not location.strip():
        return "is empty"
    if location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        return "is an absolute path"
    if ".." in parts:
        return "leaves the model's folder ('..')"
    real = os.path.realpath(folder / location)
    if os.path.commonpath([real, real_folder]) != real_folder:
        return f"resolves outside the model's folder (to {real})"
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return "does not exist"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


def _walk(buf: memoryview) -> Iterator[tuple[str, str]]:
    """Every (tensor name, location) in a serialized ModelProto (iterative: no recursion)."""
    todo: list[tuple[str, int, int]] = [("model", 0, len(buf))]
    while todo:
        kind, start, end = todo.pop()
        if kind == "tensor":
            yield from _tensor_locations(buf, start, end, todo)
            continue
        sub = _SCHEMA[kind]
        for field, wire, a, b in _fields(buf, start, end):
            if wire == 2 and field in sub:
                todo.append((sub[field], a, b))


def _tensor_locations(
    buf: memoryview, start: int, end: int, todo: list[tuple[str, int, int]]
) -> Iterator[tuple[str, str]]:
    name = ""
    locations = []
    for field, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            continue
        if field == _TENSOR_NAME:
            name = _text(buf, a, b)
        elif field in _SCHEMA["tensor"]:
            key = value = ""
            for f2, w2, a2, b2 in _fields(buf, a, b):
                if w2 == 2 and f2 == _ENTRY_KEY:
                    key = _text(buf, a2, b2)
                elif w2 == 2 and f2 == _ENTRY_VALUE:
                    value = _text(buf, a2, b2)
            if key == "location":
                locations.append(value)
    for loc in locations:
        yield name, loc


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of each field in ``buf[start:end]``."""
    i = start
    while i < end:
        field, wire, a, i = _field(buf, i, end)
        if wire == 4:
            raise ValueError("end of a group that was not started")
        yield field, wire, a, i


def _field(buf: memoryview, i: int, end: int) -> tuple[int, int, int, int]:
    """The field whose tag starts at ``i``: (number, wire type, value start, next field)."""
    key, i = _varint(buf, i, end)
    field, wire = key >> 3, key & 7
    a = i
    if wire == 0:
        _, i = _varint(buf, i, end)
    elif wire == 1:
        i += 8
    elif wire == 2:
        n, a = _varint(buf, i, end)
        i = a + n
    elif wire == 5:
        i += 4
    elif wire == 3:  # a group: its fields up to the end marker (wire type 4)
        inner = 0
        while inner != 4:
            _, inner, _, i = _field(buf, i, end)
    elif wire != 4:
        raise ValueError(f"wire type {wire}")
    if i > end or field == 0:
        raise ValueError("truncated")
    return field, wire, a, i


def _varint(buf: memoryview, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise ValueError("bad varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _text(buf: memoryview, a: int, b: int) -> str:
    return bytes(buf[a:b]).decode("utf-8", errors="replace")
