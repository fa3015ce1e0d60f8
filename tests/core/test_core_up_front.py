"""What a command cannot do is said up front, with every reason at once (issue 18, items 5 and
10): missing extras (all named in one line, exit 11, before any download), paths that do not
exist and claims-only rows (exit 2), options that would be ignored or contradict each other
(exit 2, before any download or conversion work).

Each runs the real CLI in a subprocess; a missing package is made missing for that process only
(a package folder whose import fails on PYTHONPATH, or an import hook), never mocked in this
process. The mirror is a closed port, so a download attempt would show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.bench_helpers import blocked_env, build_conv_onnx
from support.needs import needs

#: a closed port: any download attempt fails (and says so on stderr)
NO_MIRROR = "http://127.0.0.1:9"
FAST = ("--threads", "1", "--min-iters", "5", "--min-time", "0", "--warmup", "1")


def _env(tmp_path: Path, broken: tuple[str, ...] = (), blocked: tuple[str, ...] = ()) -> dict:
    """The user's environment with ``broken`` packages shadowed by a package whose import
    fails (as an absent one does) and ``blocked`` ones not findable at all."""
    shims = tmp_path / "shims"
    for name in broken:
        (shims / name).mkdir(parents=True, exist_ok=True)
        (shims / name / "__init__.py").write_text(
            f"raise ImportError('No module named {name} (a test shim)')\n"
        )
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    env = blocked_env(tmp_path, list(blocked), base)
    env["PYTHONPATH"] = os.pathsep.join([str(shims), env["PYTHONPATH"]])
    env |= {"PICOZOO_CACHE": str(tmp_path / "cache"), "PICOZOO_MIRROR": NO_MIRROR}
    return env


def _picozoo(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _one_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    """The one ``picozoo: error:`` line of a refusal (nothing else: no download, no table)."""
    assert r.returncode == code, (r.returncode, r.stderr[-3000:])
    assert r.stdout == "" and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("picozoo: error: ")
    return line.removeprefix("picozoo: error: ")


def _nothing_cached(tmp_path: Path) -> bool:
    cache = tmp_path / "cache"
    return not cache.exists() or not any(p.is_file() and p.stat().st_size for p in
                                         cache.rglob("*") if "lock" not in p.name)  # fmt: skip


# -- item 10: extras ---------------------------------------------------------------------------


@pytest.mark.slow
def test_infer_and_eval_name_every_missing_package_and_extra_at_once(tmp_path: Path) -> None:
    image = tmp_path / "dog.jpg"
    image.write_bytes(b"\xff\xd8")
    env = _env(tmp_path, broken=("onnxruntime", "cv2", "faster_coco_eval"))
    line = _one_error(_picozoo(env, "infer", "picodet-s-416", str(image)), 11)
    assert line == (
        "onnxruntime and opencv-python-headless are not installed; this needs the [eval] "
        "extra: pip install 'picozoo[eval]'"
    )
    line = _one_error(_picozoo(env, "eval", "picodet-s-416", "--coco", str(tmp_path)), 11)
    assert line == (
        "onnxruntime, opencv-python-headless and faster-coco-eval are not installed; this "
        "needs the [eval] extra: pip install 'picozoo[eval]'"
    )
    # an engine of another extra: both extras, one command
    env = _env(tmp_path, broken=("onnxruntime", "cv2", "openvino"))
    line = _one_error(_picozoo(env, "infer", "m.onnx", str(image), "--engine", "openvino"), 11)
    assert line.endswith(
        "this needs the [eval,openvino] extras: pip install 'picozoo[eval,openvino]'"
    )
    assert line.startswith("openvino, onnxruntime and opencv-python-headless are not installed")
    assert _nothing_cached(tmp_path)


@pytest.mark.slow
def test_bench_with_the_base_install_exits_11_before_downloading(tmp_path: Path) -> None:
    env = _env(tmp_path, blocked=("onnxruntime", "pandas", "matplotlib", "paddle"))
    line = _one_error(_picozoo(env, "bench", "picodet-s-416", "--format", "md"), 11)
    assert line == (
        "pandas and onnxruntime are not installed; this needs the [bench] extra: "
        "pip install 'picozoo[bench]'"
    )
    line = _one_error(_picozoo(env, "bench", "picodet-s-416", "--engine", "paddle"), 11)
    assert "this needs the [convert] extra" in line
    assert _nothing_cached(tmp_path)


@pytest.mark.slow
@needs("onnx", "onnxruntime")
def test_engine_all_skips_ncnn_without_pnnx_with_the_install_command(tmp_path: Path) -> None:
    """The pnnx package without its executable (as if not installed; the venv's launcher
    script needs torch, so it does not count): the ncnn cell is skipped with a note."""
    model = build_conv_onnx(tmp_path / "tiny.onnx", size=32)
    env = _env(tmp_path, broken=("pnnx",), blocked=("openvino", "MNN"))
    r = _picozoo(env, "bench", str(model), "--engine", "all", *FAST, "--format", "json")
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert {c["engine"] for c in doc["cells"]} == {"onnxruntime"}
    said = "--engine all: ncnn skipped: the pnnx converter is not installed: " \
           "pip install --no-deps pnnx"  # fmt: skip
    assert said in doc["notes"] and f"note: {said}" in r.stderr
    assert "FAILED" not in r.stderr


# -- item 10: arguments that cannot be benched -------------------------------------------------


@pytest.mark.slow
def test_bench_refuses_a_missing_path_and_a_claims_only_row_up_front(tmp_path: Path) -> None:
    env = _env(tmp_path)
    line = _one_error(_picozoo(env, "bench", str(tmp_path / "nonexistent.onnx")), 2)
    assert line.startswith(f"{tmp_path / 'nonexistent.onnx'}: no such file or directory")
    line = _one_error(_picozoo(env, "bench", "yolov5s-640", "picodet-s-416"), 2)
    assert line.startswith("yolov5s-640 has no ONNX or Paddle inference model to bench")
    assert "claims-only comparison row" in line
    assert _nothing_cached(tmp_path)


# -- item 5: options that would be ignored -----------------------------------------------------


@pytest.mark.slow
@needs("onnx", "onnxruntime")
def test_bench_input_size_that_a_fixed_model_ignores_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path)
    line = _one_error(_picozoo(env, "bench", "picodet-s-416", "--input-size", "320"), 2)
    assert line == (
        "--input-size 320x320 cannot apply to picodet-s-416: its exports take a fixed 416x416 "
        "input (bench the one trained at 320x320: picodet-s-320)"
    )
    assert _nothing_cached(tmp_path)  # refused before the pull
    fixed = build_conv_onnx(tmp_path / "fixed.onnx", size=32)
    line = _one_error(_picozoo(env, "bench", str(fixed), "--input-size", "64", *FAST), 2)
    assert line.startswith(
        "--input-size 64x64 cannot apply to fixed: its input 'image' has a fixed size 32x32"
    )
    # the size it has, and a dynamic model, are benched (at the size asked)
    r = _picozoo(env, "bench", str(fixed), "--input-size", "32", *FAST, "--format", "json")
    assert r.returncode == 0, r.stderr[-3000:]
    dynamic = build_conv_onnx(tmp_path / "dynamic.onnx", dynamic=True)
    r = _picozoo(env, "bench", str(dynamic), "--input-size", "48x40", *FAST, "--format", "json")
    assert r.returncode == 0, r.stderr[-3000:]
    (cell,) = json.loads(r.stdout)["cells"]
    assert [i["shape"] for i in cell["inputs"]] == [[1, 3, 48, 40]]


@pytest.mark.slow
def test_convert_batch_flags_exclude_each_other(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for order in (("--fixed-batch", "--dynamic-batch"), ("--dynamic-batch", "--fixed-batch")):
        line = _one_error(_picozoo(env, "convert", "picodet-s-416", *order), 2)
        assert line == "--dynamic-batch and --fixed-batch exclude each other (give one of them)"
    assert _nothing_cached(tmp_path)


@pytest.mark.slow
def test_convert_dynamic_batch_with_nms_is_refused_before_any_work(tmp_path: Path) -> None:
    """A model id whose tarball ends in NMS: refused before the download (closed mirror)."""
    env = _env(tmp_path)
    for extra in ((), ("--to", "openvino")):
        line = _one_error(_picozoo(env, "convert", "picodet-s-416", "--dynamic-batch", *extra), 2)
        assert line.startswith("--dynamic-batch: the model ends in multiclass_nms3")
    assert _nothing_cached(tmp_path)


@pytest.mark.slow
@needs("paddle")
def test_convert_dynamic_batch_on_a_paddle_folder_with_nms_runs_no_paddle2onnx(
    tmp_path: Path,
) -> None:
    from support.paddle_models import build_models

    models = build_models(tmp_path / "models", ["legacy-nms", "pir-nms"])
    env = _env(tmp_path)
    for folder in models.values():
        r = _picozoo(env, "convert", str(folder), "--dynamic-batch")
        line = _one_error(r, 2)  # no "paddle2onnx ..." progress line before it
        assert line.startswith("--dynamic-batch: the model ends in multiclass_nms3")
    assert _nothing_cached(tmp_path)
