"""Run a native step (a C++ converter that can abort or crash) in a child process.

paddle2onnx, onnxsim, MNN's converter and OpenVINO are C++ libraries: on some inputs they call
``abort()`` or crash (paddle2onnx 2.1.0 aborts on a quantized model: "Only support e4m3 or
e5m2 now"), which would end picozoo itself with exit 134/139 and nothing said. :func:`run_native`
calls ``module:function(**kwargs)`` in a fresh Python process instead; a death by a signal, or
an exit without a result, becomes one :class:`~picozoo.errors.PicozooError` (the class the
caller gives: :class:`~picozoo.errors.ConversionError`, exit 9, for the converters) naming the
tool, the signal and the last line the tool printed. A :class:`~picozoo.errors.PicozooError`
raised in the child is raised again in the parent, as it was; any other exception becomes one
line. The request and the result travel as pickles through a private temporary folder that is
removed in every case; the child's output is captured (the tools are noisy).

The ONNX and engine recipes run whole in one child each (:mod:`picozoo.convert.to_onnx`,
:mod:`picozoo.convert.to_engine`), so nothing is imported twice: the cost is one Python
start-up, 0.06 s for a round trip here; a PicoDet-S-416-sized ``convert --to onnx`` used the
same CPU time with and without the child (4.1 s). The child is killed if picozoo dies.

>>> run_native("json:dumps", tool="json", subject="a list", obj=[1, 2])
'[1, 2]'
>>> run_native("os:abort", tool="a test", subject="nothing")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
picozoo.errors.ConversionError: a test crashed on nothing (SIGABRT) ...
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .capture import KEEP_DIR
from .errors import ConversionError, DiskError, PicozooError

REQUEST, RESULT, PROGRESS = "request.pickle", "result.pickle", "progress.txt"
_ROOT = str(Path(__file__).resolve().parent.parent)  #: the folder holding the picozoo package


def run_native(
    target: str,
    *,
    tool: str | Callable[[str | None], str],
    subject: str,
    error: type[PicozooError] = ConversionError,
    hint: str | None = None,
    timeout: float | None = None,
    explain: Callable[[str, str], PicozooError] | None = None,
    progress: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Any:
    """``module:function(**kwargs)`` in a child process; its return value (picklable).

    ``tool`` names the native library (``paddle2onnx``), ``subject`` what it works on (a file
    name): both go into the error of a crash. ``error`` is the class of that error; ``hint``
    its hint (default: what was kept and how to see the tool's own output). ``explain(output,
    exception)`` makes the error of an exception that is not a :class:`PicozooError` from what
    the child printed (its last 40 lines) and the exception as one line. ``progress``: the
    function gets a ``say`` argument whose lines are passed to ``progress`` as they come;
    ``tool`` may then be a function of the last line (the step the child was at).
    """
    call = NativeCall(target, kwargs, tool=tool, subject=subject, error=error, hint=hint,
                      explain=explain, progress=progress)  # fmt: skip
    with call:
        return call.result(timeout)


class NativeCall:
    """One call started in a child process now, its result read later (:meth:`result`), so the
    parent can work meanwhile (e.g. import what it needs next). ``kwargs`` None: the child
    imports the target's module (and the modules of ``preload``) and waits for them
    (:meth:`send`), so that a step whose input is made later starts with its imports done.
    Use it as a context manager: leaving it ends the child if it still runs and removes the
    temporary folder.

    >>> with NativeCall("json:dumps", {"obj": 1}, tool="json", subject="1") as call:
    ...     call.result()
    '1'
    >>> with NativeCall("json:dumps", None, tool="json", subject="2") as call:
    ...     call.send(obj=2)
    ...     call.result()
    '2'
    """

    def __init__(
        self,
        target: str,
        kwargs: dict[str, Any] | None,
        *,
        tool: str | Callable[[str | None], str],
        subject: str,
        error: type[PicozooError] = ConversionError,
        hint: str | None = None,
        explain: Callable[[str, str], PicozooError] | None = None,
        preload: tuple[str, ...] = (),
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.tool, self.subject, self.error, self.explain = tool, subject, error, explain
        self.progress, self.said = progress, 0
        self.stage: str | None = None
        self.hint = hint or "nothing was cached; PICOZOO_DEBUG=1 shows the tool's own output"
        try:
            self._folder = tempfile.TemporaryDirectory(prefix="picozoo-native-")
        except OSError as e:
            raise DiskError(f"cannot create a temporary folder: {e.strerror or e}") from e
        self.work = Path(self._folder.name)
        try:
            self._out = open(self.work / "output", "w+b")  # noqa: SIM115 - closed in close()
        except OSError as e:
            self._folder.cleanup()
            raise DiskError(f"cannot write to {self.work}: {e.strerror or e}") from e
        cmd = [sys.executable, "-c", _BOOT, _ROOT, str(self.work), target, *preload]
        env = {**os.environ, KEEP_DIR: str(self.work)}
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=self._out, stderr=subprocess.STDOUT, env=env
            )
        except OSError as e:
            self.close()
            raise error(f"cannot start a process for {tool}: {e}", hint=self.hint) from e
        if kwargs is not None:
            self.send(**kwargs)

    def send(self, **kwargs: Any) -> None:
        """Give the child its arguments (once); it runs the call as soon as its imports are done."""
        if self.progress is not None:
            kwargs = {**kwargs, "say": PROGRESS}
        try:
            with open(self.work / REQUEST, "wb") as f:
                pickle.dump(kwargs, f)
        except OSError as e:
            self.close()
            raise DiskError(f"cannot write to {self.work}: {e.strerror or e}") from e
        finally:
            self._go()

    def _go(self) -> None:
        """Close the child's stdin: its signal to read the request (or to find none)."""
        stdin = self._proc.stdin if hasattr(self, "_proc") else None
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()

    def __enter__(self) -> NativeCall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the child if it still runs; remove the temporary folder."""
        proc = getattr(self, "_proc", None)
        self._go()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._out.close()
        self._folder.cleanup()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the child; its return value, or the error (see :func:`run_native`)."""
        self._go()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                code = self._proc.wait(0.1 if self.progress else timeout)
                break
            except subprocess.TimeoutExpired as e:
                self._relay()
                if deadline is not None and time.monotonic() > deadline:
                    raise self.error(
                        f"{self._tool()} did not finish on {self.subject} within {timeout:g} s",
                        hint=self.hint,
                    ) from e
        self._relay()
        self._out.seek(0)
        printed = self._out.read() + b"".join(
            p.read_bytes() for p in sorted(self.work.glob("captured-*"), key=_mtime)
        )
        if os.environ.get("PICOZOO_DEBUG") == "1" and printed:
            sys.stderr.write(printed.decode("utf-8", "replace"))
        output = _lines(printed)
        last = _last_words(output)
        said = f": {last}" if last else ""
        result = _read(self.work / RESULT)
        if result is None and code < 0:
            name = _signal_name(-code)
            raise self.error(f"{self._tool()} crashed on {self.subject} ({name}){said}",
                             hint=self.hint)  # fmt: skip
        if result is None:
            raise self.error(
                f"{self._tool()} ended on {self.subject} without a result (exit {code}){said}",
                hint=self.hint,
            )
        kind, payload = result
        if kind == "ok":
            return payload
        if kind == "picozoo":
            raise _rebuild(*payload)
        if self.explain is not None:
            raise self.explain(output, payload)
        raise self.error(f"{self._tool()} failed on {self.subject}: {payload}", hint=self.hint)

    def _relay(self) -> None:
        """Pass the child's new progress lines to ``progress``; remember the last one."""
        if self.progress is None:
            return
        try:
            lines = (self.work / PROGRESS).read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines[self.said :]:
            self.progress(line)
        self.said = max(self.said, len(lines))
        self.stage = lines[-1] if lines else self.stage

    def _tool(self) -> str:
        """The tool of the step the child was at: ``tool`` may be a function of the last
        progress line (None before the first)."""
        tool = self.tool
        return tool(self.stage) if callable(tool) else tool


def exit_status(code: int) -> str:
    """A child's exit status in words: ``exit 3``, or the signal that ended it.

    >>> exit_status(3), exit_status(-6)
    ('exit 3', 'SIGABRT')
    """
    return _signal_name(-code) if code < 0 else f"exit {code}"


def _signal_name(number: int) -> str:
    """``SIGABRT`` for 6 (the number when the platform has no name for it)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_words(output: str) -> str:
    """The last line a tool printed before dying, at most 200 characters; Paddle's crash dump
    (``C++ Traceback`` / ``Error Message Summary`` ...) is skipped: the tool's own message
    comes before it."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "C++ Traceback" in line or "Error Message Summary" in line:
            lines = lines[:i]
            break
    lines = [ln for ln in lines if ln.strip("-= ")]
    return lines[-1][:200] if lines else ""


def _lines(output: bytes, keep: int = 40) -> str:
    """The last ``keep`` non-empty lines of ``output``, without colour codes."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", output.decode("utf-8", "replace"))
    return "\n".join([ln.strip() for ln in text.splitlines() if ln.strip()][-keep:])


def _read(path: Path) -> tuple[str, Any] | None:
    try:
        with open(path, "rb") as f:
            loaded = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None
    return loaded if isinstance(loaded, tuple) and len(loaded) == 2 else None


def _rebuild(
    module: str, name: str, message: str, hint: str | None, attrs: dict[str, Any] | None = None
) -> PicozooError:
    """The child's :class:`PicozooError`, as the same class (its message, hint and other
    attributes, e.g. a :class:`~picozoo.errors.ParityError` 's ``failures``)."""
    cls: Any = PicozooError
    with contextlib.suppress(ImportError, AttributeError):
        found = getattr(importlib.import_module(module), name)
        if isinstance(found, type) and issubclass(found, PicozooError):
            cls = found
    err: PicozooError = cls.__new__(cls)
    PicozooError.__init__(err, message, hint=hint)
    err.__dict__.update(attrs or {})
    return err


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


#: The child's program: ``python -c _BOOT <root> <folder> <module:function> [<module>...]``
#: (no ``-m``: picozoo is imported from
#: the same folder as the parent's, installed or not).
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from picozoo.native import child; child()"


def _die_with_parent() -> None:  # pragma: no cover - in the child
    """Linux: be killed when the parent dies (e.g. by SIGKILL), never left running alone."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the line above
            os._exit(1)


def _progress_writer(path: Path) -> Callable[[str], None]:  # pragma: no cover - in the child
    def say(line: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(" ".join(str(line).split()) + "\n")

    return say


def child() -> None:  # pragma: no cover - runs in the child process
    """The child's side: import the target's module, wait for the request (stdin closed), run
    it, write its result beside the request."""
    from .runtime.base import short_error

    _die_with_parent()
    work, target = Path(sys.argv[2]), sys.argv[3]
    module, name = target.split(":")
    result: tuple[str, Any]
    try:
        function = getattr(importlib.import_module(module), name)
        for heavy in sys.argv[4:]:
            with contextlib.redirect_stdout(sys.stderr):
                importlib.import_module(heavy)
        sys.stdin.buffer.read()  # until the parent closes it: the request is written
        with open(work / REQUEST, "rb") as f:
            kwargs = pickle.load(f)
        if kwargs.get("say") == PROGRESS:
            kwargs["say"] = _progress_writer(work / PROGRESS)
        result = ("ok", function(**kwargs))
    except PicozooError as e:
        attrs = {k: v for k, v in vars(e).items() if k not in ("message", "hint")}
        try:
            pickle.dumps(attrs)
        except Exception:
            attrs = {}
        result = ("picozoo", (type(e).__module__, type(e).__qualname__, e.message, e.hint, attrs))
    except BaseException as e:  # SystemExit from paddle2onnx, C++ exceptions
        result = ("exception", f"{type(e).__name__}: {short_error(e)}")
    with open(work / RESULT, "wb") as f:
        pickle.dump(result, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the native libraries' exit handlers (some crash at exit)
