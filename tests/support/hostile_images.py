"""Hostile image files for ``infer``/``eval`` tests and attack scenarios.

:func:`png_bomb` writes a valid PNG of ``width x height`` black pixels in a few hundred KB: a
30000 x 30000 one is ~875 KB on disk and 900 MB (grey) to 2.7 GB (RGB) decoded.

>>> import tempfile; p = png_bomb(Path(tempfile.mkdtemp()) / "b.png", 3000, 2000)
>>> from PIL import Image; Image.open(p).size, p.stat().st_size < 20_000
((3000, 2000), True)
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

BLOCK = 1 << 20


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A grey 8-bit PNG of ``width x height`` zeros (filter bytes included), written in one
    pass: the deflate stream is one compressed 1 MiB block of zeros repeated (full flushes make
    the blocks identical), so even 60000 x 60000 takes seconds, not minutes."""
    raw = (width + 1) * height  # a filter byte per row, then the row
    c = zlib.compressobj(9, zlib.DEFLATED, 15)
    head = c.compress(b"") + c.flush(zlib.Z_FULL_FLUSH)  # zlib header (+ empty block)
    block = c.compress(bytes(BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(raw, BLOCK)
    tail = c.compress(bytes(rest)) + c.flush(zlib.Z_FINISH)
    adler = 1
    chunk = bytes(BLOCK)
    for _ in range(full):
        adler = zlib.adler32(chunk, adler)
    adler = zlib.adler32(bytes(rest), adler)
    # the compressor computed its own adler over what it saw (one block + rest): patch it
    tail = tail[:-4] + struct.pack(">I", adler)
    idat_len = len(head) + len(block) * full + len(tail)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        f.write(struct.pack(">I", idat_len) + b"IDAT")
        crc = zlib.crc32(b"IDAT")
        crc = zlib.crc32(head, crc)
        f.write(head)
        for _ in range(full):
            f.write(block)
            crc = zlib.crc32(block, crc)
        f.write(tail)
        crc = zlib.crc32(tail, crc)
        f.write(struct.pack(">I", crc & 0xFFFFFFFF))
        _chunk(f, b"IEND", b"")
    return path


def _chunk(f: object, kind: bytes, data: bytes) -> None:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc))  # type: ignore[attr-defined]


NAN_ROWS = [[0, 0.9, 4, 4, 30, 30], [1, 0.8, float("nan"), 2, float("nan"), 20]]


def rows_onnx(path: Path, rows: list[list[float]] = NAN_ROWS, size: int = 64) -> Path:
    """A post-processed-PicoDet-shaped ONNX (inputs ``image`` [1, 3, size, size] and
    ``scale_factor`` [1, 2]; outputs ``[K, 6]`` rows ``[class, score, x1, y1, x2, y2]`` and
    their count) whose rows are the constant ``rows``: by default a good box of class 0 and a
    NaN box of class 1, as a broken export or config can give."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.array(rows, "float32")
    count = np.array([len(rows)], "int32")
    nodes = [
        helper.make_node("Constant", [], ["rows"], value=numpy_helper.from_array(table)),
        helper.make_node("Identity", ["rows"], ["bboxes"]),
        helper.make_node("Constant", [], ["num"], value=numpy_helper.from_array(count)),
        helper.make_node("Identity", ["num"], ["count"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan_box",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size]),
            helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, [1, 2]),
        ],
        [
            helper.make_tensor_value_info("bboxes", TensorProto.FLOAT, [len(rows), 6]),
            helper.make_tensor_value_info("count", TensorProto.INT32, [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
