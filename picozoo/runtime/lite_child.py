"""Runs a Paddle-Lite ``.nb`` inside the managed tool environment's Python (3.7-3.10, with only
``paddlelite`` and ``numpy``): started by :mod:`picozoo.runtime.lite` as
``<venv>/bin/python -I lite_child.py``, it never imports picozoo.

Protocol (stdin -> stdout, binary): each message is a 4-byte little-endian length, a JSON
header of that length, then the raw bytes of each array the header lists under ``arrays``
(``name``, ``shape``, ``dtype``). Requests: ``{"cmd": "load", "model": path}`` and
``{"cmd": "run", "arrays": [...]}``; every reply is ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``. Paddle-Lite's own log lines go to stderr (fd 1 is
redirected there; the protocol keeps a copy of the original stdout).

Outputs are read by name (``get_output_names`` + ``get_output_by_name``): ``get_output(i)``
past the last output is a fatal CHECK that kills the process. This file must run on Python
3.7: no syntax or library newer than that.
"""

import json
import os
import struct
import sys
import time


def _read_exact(stream, n):
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def receive(stream, np):
    """(header, {name: array}) of the next message; (None, {}) at the end of input or when it
    stops mid-message. The arrays are read-only views of the bytes read. Both sides use this:
    :mod:`picozoo.runtime.lite` imports it."""
    raw = _read_exact(stream, 4)
    if raw is None:
        return None, {}
    body = _read_exact(stream, struct.unpack("<I", raw)[0])
    if body is None:
        return None, {}
    header = json.loads(body.decode("utf-8"))
    arrays = {}
    for spec in header.get("arrays", []):
        dtype = np.dtype(spec["dtype"])
        count = 1
        for d in spec["shape"]:
            count *= int(d)
        data = _read_exact(stream, count * dtype.itemsize) if count else b""
        if data is None:
            return None, {}
        arrays[spec["name"]] = np.frombuffer(data, dtype).reshape(spec["shape"])
    return header, arrays


def send(stream, header, arrays=()):
    """Write one message: ``header`` (JSON) then the raw bytes of ``arrays`` [(name, array)],
    each C-contiguous (written without a copy)."""
    header = dict(header)
    header["arrays"] = [
        {"name": n, "shape": list(a.shape), "dtype": str(a.dtype)} for n, a in arrays
    ]
    blob = json.dumps(header).encode("utf-8")
    stream.write(struct.pack("<I", len(blob)) + blob)
    for _name, a in arrays:
        stream.write(memoryview(a).cast("B"))
    stream.flush()


def main():
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # Paddle-Lite logs on stdout: keep them off the protocol
    inp = sys.stdin.buffer
    import numpy as np
    import paddlelite
    from paddlelite.lite import MobileConfig, create_paddle_predictor

    predictor = None
    while True:
        header, arrays = receive(inp, np)
        if header is None:
            return 0
        try:
            if header["cmd"] == "load":
                config = MobileConfig()
                config.set_model_from_file(header["model"])
                predictor = create_paddle_predictor(config)
                send(
                    out,
                    {
                        "ok": True,
                        "version": predictor.get_version(),
                        "paddlelite": getattr(paddlelite, "__version__", ""),
                        "python": ".".join(str(v) for v in sys.version_info[:3]),
                        "numpy": np.__version__,
                        "inputs": list(predictor.get_input_names()),
                        "outputs": list(predictor.get_output_names()),
                    },
                )
            elif header["cmd"] == "run":
                if predictor is None:
                    raise RuntimeError("no model loaded")
                for name, value in arrays.items():
                    predictor.get_input_by_name(name).from_numpy(np.array(value))  # writable
                t0 = time.perf_counter()
                predictor.run()
                run_s = time.perf_counter() - t0
                results = [
                    (n, np.array(predictor.get_output_by_name(n).numpy(), copy=True))
                    for n in predictor.get_output_names()
                ]
                send(out, {"ok": True, "run_s": run_s}, results)
            else:
                send(out, {"ok": False, "error": f"unknown command {header.get('cmd')!r}"})
        except Exception as e:  # reported to the parent, which raises it as an EngineError
            send(out, {"ok": False, "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    sys.exit(main())
