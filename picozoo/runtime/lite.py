"""Paddle-Lite adapter (x86 only): an x86 ``.nb`` run in the managed tool environment's Python.

The ``paddlelite`` wheels exist for Python 3.6-3.10 only, so the model runs in a side
interpreter: ``<cache>/tools/paddlelite-<v>-cp<XY>/venv/bin/python`` (made by ``picozoo convert
--to lite``, see :mod:`picozoo.convert.lite_toolchain`; it holds ``paddlelite`` and ``numpy``)
running :mod:`.lite_child` with ``MobileConfig`` + ``create_paddle_predictor``. One child per
loaded model (one per bench cell: every cell is a fresh process anyway); feeds and outputs go
through a pipe as raw arrays. The tool environment is the one named in the ``provenance.json``
beside the ``.nb`` (a conversion in the store), else any complete one in the cache.

Only an x86 ``.nb`` (every kernel ``x86`` or ``host``, read by :mod:`picozoo.naive_buffer`) is
run: an ARM ``.nb`` loads on x86 and returns garbage, so it is refused
(:func:`~picozoo.runtime.base.refuse_lite`). Precision: fp32 (Paddle-Lite has no x86 FP16
kernels; what ran is read back from the kernels). Threads: ``MobileConfig`` has no thread
setting; the child gets ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = N (the x86 kernels use MKL
and OpenMP), recorded in the settings.

The bench times :meth:`LiteRuntime.run` around the pipe round trip (outputs copied back each
run; inputs sent when they differ from what the child holds, compared by value: a bench cell's
repeated inputs are sent once, as Paddle's stay bound); ``settings["last_run_ms"]`` is the
predictor's own ``run()`` time in the child.

>>> numpy_pin()
'numpy==1.21.6'
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EngineError, ModelFileError, ToolchainError
from .base import Runtime, TensorInfo, short_error
from .lite_child import receive, send  # the one framing of the protocol, shared with the child

#: numpy for the tool environment: 1.21.6 has wheels for CPython 3.7-3.10
NUMPY = "1.21.6"
MARKER = ".complete"
CHILD = Path(__file__).with_name("lite_child.py")
CREATE_HINT = (
    "convert a model to Lite once (`picozoo convert MODEL --to lite`): it creates the "
    "Paddle-Lite tool environment in the cache"
)


def numpy_pin() -> str:
    return f"numpy=={NUMPY}"


def env_python(env_dir: Path) -> Path | None:
    """The Python of a complete tool environment that can run models (it has numpy), or
    None."""
    marker = env_dir / MARKER
    python = env_dir / "venv" / "bin" / "python"
    try:
        ready = numpy_pin() in marker.read_text(encoding="utf-8")
    except OSError:
        return None
    return python if ready and python.is_file() else None


def find_side_python(nb: Path, cache_dir: Path | None = None) -> Path:
    """The tool environment's Python for ``nb``: the one its ``provenance.json`` names, else
    any complete one in ``cache_dir`` (default: the cache of ``Settings.from_env()``)."""
    prov = nb.parent / "provenance.json"
    try:
        named = json.loads(prov.read_text(encoding="utf-8")).get("tools", {}).get("env")
    except (OSError, ValueError, AttributeError):
        named = None
    if isinstance(named, str) and (found := env_python(Path(named))) is not None:
        return found
    if cache_dir is None:
        from ..settings import Settings

        cache_dir = Settings.from_env().cache_dir
    tools = Path(cache_dir) / "tools"
    envs = sorted(tools.glob("paddlelite-*")) if tools.is_dir() else []
    for env in envs:
        if (found := env_python(env)) is not None:
            return found
    raise ToolchainError(
        f"no Paddle-Lite tool environment (paddlelite + numpy) in {tools} to run {nb.name}",
        hint=CREATE_HINT,
    )


def check_x86(path: Path) -> dict[str, Any]:
    """The ``.nb``'s facts (:func:`picozoo.naive_buffer.read_nb_file`); raises
    :class:`~picozoo.errors.ModelFileError` unless it is an x86 ``.nb``."""
    from ..naive_buffer import read_nb_file

    info = read_nb_file(path).to_dict()
    if "arm" in info["targets"]:
        from .base import refuse_lite

        refuse_lite(path)
    if info["targets"] != ["x86"]:
        built = "/".join(info["targets"]) or "no known target"
        raise ModelFileError(
            f"{path.name} is a Paddle-Lite model for {built}: picozoo runs x86 .nb files only",
            hint="on this machine run the x86 .nb `picozoo convert --to lite` builds beside the "
            "ARM one (model.x86.nb); run ARM .nb files on an ARM device",
        )
    return info


@dataclass
class LiteRuntime(Runtime):
    proc: Any = None
    nb: dict[str, Any] = field(default_factory=dict)
    lite_version: str = ""
    output_names_: list[str] = field(default_factory=list)
    stderr_file: Any = None
    #: copies of the inputs the child holds (it keeps them between runs)
    _sent: list[Any] | None = None

    @property
    def version(self) -> str:
        return self.lite_version

    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo(n, [d if d > 0 else None for d in s], "float32")
                for n, s in self.nb["inputs"].items()]  # fmt: skip

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(n, [], "float32") for n in self.output_names_]

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        import numpy as np

        names = list(self.nb["inputs"])
        missing = [n for n in names if n not in feeds]
        if missing:
            raise EngineError(f"Paddle-Lite model input(s) {missing} were not given")
        arrays = [(n, np.ascontiguousarray(feeds[n], dtype="float32")) for n in names]
        same = self._sent is not None and all(
            np.array_equal(a, b) for (_, a), b in zip(arrays, self._sent, strict=True)
        )
        # the child's input tensors keep what was sent last: equal inputs are not sent again
        reply, outputs = self._call({"cmd": "run"}, [] if same else arrays)
        if not same:
            self._sent = [a.copy() for _, a in arrays]
        self.settings["last_run_ms"] = round(float(reply.get("run_s", 0.0)) * 1e3, 3)
        if "os_threads" not in self.settings:  # what N became, read once a run has happened
            self.settings["os_threads"] = _os_threads(self.proc.pid)
        return [outputs[n] for n in self.output_names_]

    def _call(
        self, header: dict[str, Any], arrays: list[tuple[str, Any]] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            import numpy as np

            send(self.proc.stdin, header, arrays or [])
            reply, outputs = receive(self.proc.stdout, np)
        except (OSError, ValueError, struct.error) as e:
            reply, outputs = None, {}
            broken = short_error(e)
        else:
            broken = ""
        if reply is None:
            code = self.proc.poll()
            raise EngineError(
                f"the Paddle-Lite side process died ({_status(code)}): "
                f"{self._stderr_tail() or broken or 'no output'}",
                hint="Paddle-Lite aborts on a CHECK failure; check the model and its inputs",
            )
        if not reply.get("ok"):
            raise EngineError(f"Paddle-Lite: {reply.get('error', 'unknown error')}")
        return reply, outputs

    def _stderr_tail(self) -> str:
        if self.stderr_file is None:
            return ""
        try:
            self.stderr_file.seek(0)
            lines = [ln.strip() for ln in self.stderr_file.read().decode("utf-8", "replace")
                     .splitlines() if ln.strip()]  # fmt: skip
        except (OSError, ValueError):
            return ""
        return short_error(Exception(lines[-1])) if lines else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _os_threads(pid: int) -> int | None:
    """The threads the side process runs (Linux ``/proc``; None elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _status(code: int | None) -> str:
    if code is None:
        return "no reply"
    return f"signal {-code}" if code < 0 else f"exit {code}"


def open_model(
    path: Path,
    *,
    threads: int,
    precision: str,
    reference: bool,
    pipelined: bool = False,
    python: Path | None = None,
) -> LiteRuntime:
    import tempfile

    if path.is_dir() or path.suffix != ".nb":
        raise ModelFileError(
            f"{path} is not a Paddle-Lite .nb file",
            hint="Paddle-Lite runs the .nb files `picozoo convert --to lite` writes",
        )
    nb = check_x86(path)
    side = python or find_side_python(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), GLOG_minloglevel="2")
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- the child's stderr, kept while it runs
    try:
        proc = subprocess.Popen(
            [str(side), "-I", str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    except OSError as e:
        stderr.close()
        raise EngineError(f"cannot start {side}: {short_error(e)}", hint=CREATE_HINT) from e
    runtime = LiteRuntime(
        path=path,
        threads=threads,
        precision=precision,
        engine="lite",
        extra="lite",
        proc=proc,
        nb=nb,
        stderr_file=stderr,
    )
    reply, _ = runtime._call({"cmd": "load", "model": str(path.absolute())})
    runtime.lite_version = str(reply.get("paddlelite") or reply.get("version") or "")
    runtime.output_names_ = list(reply.get("outputs") or nb["outputs"])
    kernels = nb["kernels"]
    runtime.executed_precision = "fp32" if not nb["fp16_kernels"] else "fp16"
    runtime.precision_note = "read back from the .nb's kernels: " + ", ".join(
        f"{n} {k}" for k, n in kernels.items()
    )
    runtime.settings = {
        "target": "x86",
        "threads": threads,
        "threads_via": "OMP_NUM_THREADS/MKL_NUM_THREADS (MobileConfig has no thread setting); "
        "os_threads: the side process's threads after its first run",
        "api": "MobileConfig + create_paddle_predictor",
        "opt_version": nb["opt_version"],
        "side_python": str(side),
        "python": reply.get("python"),
        "numpy": reply.get("numpy"),
        "timing": "round trip through a pipe to the side interpreter (outputs copied back "
        "each run, inputs sent when they change); last_run_ms: the predictor's own run()",
        "memory": "the side interpreter's memory is not in the worker's peak RSS",
    }
    return runtime
