"""Native code that can abort or crash the process: each failure is one error with its exit code.

* a converter run in a child process (:mod:`picozoo.native`): its death by a signal, its
  exception or its :class:`PicozooError` come back as one error, its temporary files go;
* paddle2onnx 2.1.0 aborts (SIGABRT) on a PaddleSlim-quantized model: the model is refused up
  front with what works instead (Paddle Inference runs it), and the abort itself, when it
  happens, is one error line;
* a file that is not a Paddle program (random bytes crash Paddle Inference with SIGSEGV) is
  refused before Paddle loads it (:mod:`picozoo.paddle_program`);
* an input shape too large to feed, a full or read-only disk during ``convert``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from picozoo.convert import convert
from picozoo.errors import (
    ConversionError,
    DiskError,
    EngineError,
    ExitCode,
    QuantizedModelError,
    UsageError,
)
from picozoo.hub.store import Store
from picozoo.native import NativeCall, run_native
from picozoo.paddle_dir import find_paddle_model
from picozoo.paddle_program import ProgramError, legacy_ops, program_ops, quantized_ops
from picozoo.runtime import load
from picozoo.runtime.base import MAX_INPUT_ELEMENTS, check_input_shapes
from picozoo.targets import Target


# -- the child process --------------------------------------------------------------------------
def _no_leftovers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the temporary folder at ``tmp_path/tmp`` (to see what the runner leaves)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_run_native_returns_the_value_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmp = _no_leftovers(monkeypatch, tmp_path)
    assert run_native("json:dumps", tool="json", subject="a dict", obj={"a": [1, 2]}) == (
        '{"a": [1, 2]}'
    )
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("sig", "name"), [("os:abort", "SIGABRT"), ("faulthandler:_sigsegv", "SIGSEGV")]
)
def test_a_crash_in_the_child_is_one_error_of_the_callers_class(
    sig: str, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmp = _no_leftovers(monkeypatch, tmp_path)
    with pytest.raises(EngineError) as exc:
        run_native(sig, tool="a tool", subject="model.x", error=EngineError)
    assert str(exc.value).startswith(f"a tool crashed on model.x ({name})")
    assert "\n" not in str(exc.value) and exc.value.exit_code == ExitCode.ENGINE
    assert list(tmp.iterdir()) == []


def test_errors_raised_in_the_child_come_back() -> None:
    with pytest.raises(EngineError) as exc:  # a PicozooError: the same class, message and hint
        run_native("picozoo.runtime.base:check_input_shapes", tool="t", subject="s",
                   shapes={"image": [1, 3, 100000, 200000]}, where="huge.onnx")  # fmt: skip
    assert "224 GiB" in exc.value.message and exc.value.hint
    with pytest.raises(ConversionError, match=r"^json failed on s: JSONDecodeError: Expecting"):
        run_native("json:loads", tool="json", subject="s", s="{")
    with pytest.raises(ConversionError, match=r"ended on s without a result \(exit 3\)"):
        run_native("os:_exit", tool="t", subject="s", status=3)


@pytest.mark.slow
def test_a_native_call_runs_while_the_parent_works_and_is_ended_when_left() -> None:
    sleep = {"object_list": [], "timeout": 60}  # a 60 s wait that takes keyword arguments
    with NativeCall("multiprocessing.connection:wait", sleep, tool="t", subject="s") as call:
        proc = call._proc
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting
    assert proc.returncode == -signal.SIGKILL  # killed on leaving: never an orphan
    assert not call.work.exists()


@pytest.mark.slow
def test_the_child_dies_with_picozoo(tmp_path: Path) -> None:
    """Even when picozoo itself is killed (SIGKILL: no clean-up runs), its child goes too."""
    import sys

    code = (
        "from picozoo.native import NativeCall\n"
        "c = NativeCall('multiprocessing.connection:wait', {'object_list': [], 'timeout': 60},"
        " tool='t', subject='s')\n"
        "print(c._proc.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    import picozoo

    root = str(Path(picozoo.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(ln.startswith("State:") and "Z" in ln for ln in f)
    except FileNotFoundError:
        return False


# -- quantized models ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.quant_models import build_quantized

    return build_quantized(tmp_path_factory.mktemp("quant"))


@pytest.mark.slow
def test_the_quantized_fixture_is_what_paddleslim_writes(quantized: Path) -> None:
    ops = program_ops(quantized / "model.pdmodel")
    assert quantized_ops(ops) == ["dequantize_linear", "quantize_linear"]
    assert ops.count("dequantize_linear") == 6 and ops.count("quantize_linear") == 3


@pytest.mark.slow
def test_paddle2onnx_aborts_on_it_and_that_is_one_error_line(quantized: Path) -> None:
    """What picozoo met before it refused quantized models: paddle2onnx 2.1.0 calls abort()."""
    with pytest.raises(ConversionError) as exc:
        run_native("paddle2onnx:export", tool="paddle2onnx", subject="model.pdmodel",
                   model_filename=str(quantized / "model.pdmodel"),
                   params_filename=str(quantized / "model.pdiparams"), opset_version=11,
                   optimize_tool="None")  # fmt: skip
    text = str(exc.value)
    assert "paddle2onnx crashed on model.pdmodel (SIGABRT)" in text
    assert "Only support e4m3 or e5m2 now" in text and "\n" not in text


def test_a_crash_inside_a_capture_keeps_the_tools_last_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The recipe captures the tools' output: what they said before dying is still told, and
    the step the child was at names the tool (``progress`` lines, relayed as they come)."""
    (tmp_path / "crasher.py").write_text(
        "import os\n"
        "from picozoo.capture import captured_output\n"
        "def run(say):\n"
        "    say('step two')\n"
        "    with captured_output():\n"
        "        os.write(2, b'Only support e4m3 or e5m2 now.\\n')  # as C++ code writes\n"
        "        os.abort()\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    seen: list[str] = []
    with pytest.raises(ConversionError) as exc:
        run_native("crasher:run", tool=lambda step: f"tool of {step}", subject="m",
                   progress=seen.append)  # fmt: skip
    assert seen == ["step two"]
    assert str(exc.value).startswith(
        "tool of step two crashed on m (SIGABRT): Only support e4m3 or e5m2 now."
    )


@pytest.mark.slow
def test_convert_refuses_a_quantized_model_with_what_works(quantized: Path, store: Store) -> None:
    target = Target(arg="q-model", path=quantized)
    with pytest.raises(QuantizedModelError) as exc:
        convert(store, target, to="onnx")
    assert exc.value.exit_code == ExitCode.CONVERSION
    assert "quantize_linear" in exc.value.message
    assert "picozoo bench q-model --engine paddle" in str(exc.value.hint)
    converted = store.root / "converted"
    assert not converted.exists() or not any(p.is_file() for p in converted.rglob("*"))


@pytest.mark.slow
def test_paddle_inference_runs_the_quantized_model(quantized: Path) -> None:
    import numpy as np

    runtime = load("paddle", quantized, reference=True)
    image = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    scores, boxes = runtime.run({"image": image})
    assert scores.shape == (1, 32 * 32, 5) and boxes.shape == (1, 32 * 32, 4)
    assert np.isfinite(scores).all()


# -- programs that are not programs -------------------------------------------------------------
def test_random_bytes_are_never_a_program() -> None:
    for _ in range(2000):
        with pytest.raises(ProgramError):
            legacy_ops(os.urandom(5120))


def test_a_quantized_pir_program_is_recognised(tmp_path: Path) -> None:
    import json

    ops = [{"#": "p"}, {"#": "1.data"}, {"#": "1.quantize_linear"}, {"#": "1.dequantize_linear"},
           {"#": "1.conv2d"}, {"#": "1.fetch"}]  # fmt: skip
    block = {"#": "block_0", "ops": ops}
    doc = {"base_code": {"magic": "pir", "version": 3},
           "program": {"regions": [{"#": "region_0", "blocks": [block]}]}}  # fmt: skip
    (tmp_path / "model.json").write_text(json.dumps(doc))
    found = program_ops(tmp_path / "model.json")
    assert found == ["p", "data", "quantize_linear", "dequantize_linear", "conv2d", "fetch"]
    assert quantized_ops(found) == ["dequantize_linear", "quantize_linear"]


def test_truncated_and_json_garbage_are_refused(tmp_path: Path) -> None:
    for name, data in {
        "model.json": b'{"base_code": {"magic": "pir"}, "program": 1}',
        "deep.json": b"[" * 100_000,
        "model.pdmodel": b"\x0a\x7f\x08\x00",  # a block longer than the file
    }.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ProgramError):
            program_ops(tmp_path / name)


def test_paddle_inference_never_loads_random_bytes(tmp_path: Path) -> None:
    """Paddle Inference 3.2.2 dies with SIGSEGV on this file: refused first (exit 13)."""
    (tmp_path / "model.pdmodel").write_bytes(os.urandom(5120))
    (tmp_path / "model.pdiparams").write_bytes(os.urandom(1024))
    with pytest.raises(EngineError) as exc:
        load("paddle", tmp_path)
    assert "not a Paddle ProgramDesc" in str(exc.value) and exc.value.exit_code == 13


@pytest.mark.slow
def test_real_programs_are_read(paddle_models: dict[str, Path]) -> None:
    for variant in ("legacy", "legacy-sf", "pir", "pir-nms", "legacy-nms"):
        files = find_paddle_model(paddle_models[variant])
        ops = program_ops(files.model_file)
        assert "conv2d" in ops and ops[-1] == "fetch" and not quantized_ops(ops), variant
    assert "multiclass_nms3" in program_ops(paddle_models["legacy-nms"] / "model.pdmodel")


# -- sizes and disks ----------------------------------------------------------------------------
def _huge_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 3, 100000, 200000]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["y"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_a_huge_declared_input_is_refused_before_any_allocation(
    engine: str, tmp_path: Path
) -> None:
    pytest.importorskip(engine)
    with pytest.raises(EngineError, match=r"1x3x100000x200000 is 224 GiB as float32"):
        load(engine, _huge_onnx(tmp_path / "huge.onnx"))


def test_input_shape_bound() -> None:
    check_input_shapes({"image": [1, 3, 640, 640], "scale_factor": [None, 2]}, "m")
    check_input_shapes({"image": ["batch", 3, -1, -1]}, "m")
    with pytest.raises(UsageError):
        check_input_shapes({"x": [MAX_INPUT_ELEMENTS + 1]}, "m", error=UsageError)


def _tmpfs(path: Path, options: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize(("options", "words"), [("size=16k", "no space left"),
                                                ("ro,size=64k", "Read-only")])  # fmt: skip
def test_full_or_read_only_cache_during_convert(options: str, words: str, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from support.tiny_detector import build_tiny_detector

    from picozoo.settings import Settings

    onnx = build_tiny_detector(tmp_path / "m" / "model.onnx")
    cache = tmp_path / "cache"
    mounted = _tmpfs(cache, options)
    next(mounted)
    try:
        with pytest.raises(DiskError) as exc:
            convert(Store(Settings(cache_dir=cache)), Target(arg="m", path=onnx), to="openvino")
        assert words in str(exc.value) and exc.value.exit_code == ExitCode.DISK
        assert not any(p.is_file() for p in cache.rglob("*"))  # nothing half-written
    finally:
        next(mounted, None)
