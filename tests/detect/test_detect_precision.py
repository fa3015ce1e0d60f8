"""Issue 18 item 2 for ``infer`` and ``eval``: the precision that ran. As ``bench`` skips a
cell whose engine computes in another precision than asked, ``infer`` and ``eval`` refuse
such a run (exit 13, one line naming what the engine computes in and why) and write nothing;
a run prints and records the precision as executed (read back from the engine after
loading), and the eval cache is keyed by it, so a result is never stored or served under a
precision that did not run.

The engines are real (a tiny PicoDet-shaped ONNX, converted for OpenVINO by ``convert``).
What this CPU runs is read from its feature flags (:mod:`support.cpu`), never its vendor:
OpenVINO computes f16 only with AVX512-FP16/AMX-FP16 (else bf16 where the CPU has
AVX512-BF16/AMX, else f32), and bf16 only with AVX512-BF16/AMX; so on every x86 CPU one of
fp16/bf16 is a precision it cannot run, and the tests pick it from the flags.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.bench_helpers import run_cli
from support.cpu import cpu_flags, openvino_runs
from support.engines import need_engine
from support.infer_cfg import infer_cfg

from picozoo.hub.eval_result import EvalResult

pytestmark = pytest.mark.slow

LABELS = ["a", "b", "c"]


def _x86() -> None:
    need_engine("openvino")
    pytest.importorskip("cv2")
    if not cpu_flags() or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the expectations here are those of x86 CPUs (read from /proc/cpuinfo)")


def unrunnable() -> tuple[str, str]:
    """A reduced precision OpenVINO cannot run on this CPU, and what it computes in instead."""
    for precision in ("fp16", "bf16"):
        if openvino_runs(precision) != precision:
            return precision, openvino_runs(precision)
    pytest.skip("this CPU runs both fp16 and bf16 in OpenVINO")
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny no-post-processing ONNX (64 x 64, 3 classes) with its infer_cfg.yml, and a
    4-image COCO-format set of PNGs."""
    from PIL import Image
    from support.tiny_detector import build_tiny_detector

    root = tmp_path_factory.mktemp("precision")
    (root / "m").mkdir()
    (root / "m" / "infer_cfg.yml").write_text(infer_cfg((64, 64), LABELS))
    model = build_tiny_detector(root / "m" / "model.onnx")
    coco = root / "coco"
    coco.mkdir()
    images, anns = [], []
    for i in range(1, 5):
        pixels = np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(coco / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 64, "height": 48})
        anns.append({"id": i, "image_id": i, "category_id": 1 + i % 3, "bbox": [4, 4, 30, 20],
                     "area": 600, "iscrowd": 0})  # fmt: skip
    cats = [{"id": i, "name": n} for i, n in enumerate(LABELS, 1)]
    ann = coco / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return {"model": model, "ann": ann, "image": coco / "1.png"}


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return {**env, "PICOZOO_CACHE": str(cache)}


def _eval(data: dict[str, Path], cache: Path, *args: str) -> Any:
    return run_cli("eval", str(data["model"]), "--coco", str(data["ann"].parent), "--ann",
                   str(data["ann"]), *args, env=_env(cache))  # fmt: skip


def _refused(r: Any, asked: str, ran: str) -> None:
    """Exit 13 with one error line naming what the engine computes in, nothing on stdout."""
    assert r.returncode == 13, r.stderr
    assert r.stdout == ""
    [error] = [line for line in r.stderr.splitlines() if line.startswith("picozoo: error:")]
    assert error.startswith(
        f"picozoo: error: openvino cannot run {asked} on this CPU: it computes in {ran} "
        "(INFERENCE_PRECISION_HINT read back from the compiled model"
    ), error
    assert f"--precision {ran} runs what this CPU computes in" in error


def _evals(cache: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((cache / "evals").glob("*.json"))]


def test_eval_refuses_a_precision_this_cpu_cannot_run(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """``eval --engine openvino --precision P`` where the CPU computes P in another precision:
    refused, and no result stored (in any precision)."""
    _x86()
    asked, ran = unrunnable()
    cache = tmp_path / "cache"
    r = _eval(data, cache, "--engine", "openvino", "--precision", asked, "--format", "json")
    _refused(r, asked, ran)
    assert _evals(cache) == []
    # a result the earlier versions stored under that precision (computed in another) is
    # not served: the engine is loaded, and the request refused, before the cache is read
    ok = _eval(data, cache, "--engine", "openvino", "--precision", ran, "--format", "json")
    assert ok.returncode == 0, ok.stderr
    [stored] = _evals(cache)
    mislabelled = EvalResult.from_json({**stored, "precision": asked})
    assert mislabelled is not None
    from picozoo.hub.store import Store
    from picozoo.settings import Settings

    Store(Settings(cache_dir=cache)).write_eval(mislabelled)
    assert len(_evals(cache)) == 2
    again = _eval(data, cache, "--engine", "openvino", "--precision", asked, "--format", "json")
    _refused(again, asked, ran)
    assert "cached result" not in again.stderr


def test_infer_refuses_a_precision_this_cpu_cannot_run(
    data: dict[str, Path], tmp_path: Path
) -> None:
    _x86()
    asked, ran = unrunnable()
    out = tmp_path / "out"
    r = run_cli("infer", str(data["model"]), str(data["image"]), "--engine", "openvino",
                "--precision", asked, "--out", str(out), "--format", "json",
                env=_env(tmp_path / "cache"))  # fmt: skip
    _refused(r, asked, ran)
    assert not out.exists()  # no drawn image, no results.json


def test_eval_records_and_prints_the_precision_that_ran(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """A reduced precision this CPU runs (bf16 with AVX512-BF16/AMX, else fp16 where it has
    AVX512-FP16/AMX-FP16): recorded as executed with how it was read back, keyed by it, printed;
    a cached rerun serves it with the same label."""
    _x86()
    runs = [p for p in ("bf16", "fp16") if openvino_runs(p) == p]
    if not runs:
        pytest.skip("this CPU runs neither bf16 nor fp16 in OpenVINO (AVX2 only)")
    precision = runs[0]
    cache = tmp_path / "cache"
    args = ("--engine", "openvino", "--precision", precision, "--threads", "2")
    r = _eval(data, cache, *args, "--format", "json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["precision"], result["executed_precision"]) == (precision, precision)
    assert result["precision_note"] == (
        f"INFERENCE_PRECISION_HINT read back from the compiled model: {precision}"
    )
    assert result["threads"] == 2
    assert (
        f"picozoo: engine openvino, precision {precision} as executed (INFERENCE_PRECISION_HINT "
        f"read back from the compiled model: {precision}), 2 threads"
    ) in r.stderr.splitlines()
    [stored] = _evals(cache)
    assert stored["precision"] == stored["executed_precision"] == precision
    table = _eval(data, cache, *args)
    assert table.returncode == 0 and "cached result" in table.stderr, table.stderr
    head = table.stdout.splitlines()[0]
    assert head.endswith(f", openvino, precision {precision} as executed"), head


def test_infer_and_eval_name_what_ran_on_fp32(data: dict[str, Path], tmp_path: Path) -> None:
    """ONNX Runtime runs fp32 as asked: infer and eval say so (and the threads); the stored
    eval result records it; one of an earlier version (no executed precision) says it was the
    precision asked."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    cache = tmp_path / "cache"
    r = run_cli("infer", str(data["model"]), str(data["image"]), "--out", str(tmp_path / "out"),
                env=_env(cache))  # fmt: skip
    assert r.returncode == 0, r.stderr
    line = "picozoo: engine onnxruntime, precision fp32 as executed, 1 thread"
    assert line in r.stderr.splitlines()
    r = _eval(data, cache, "--format", "json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["executed_precision"], result["threads"]) == ("fp32", 1)
    assert "precision_note" not in result and line in r.stderr.splitlines()
    [path] = sorted((cache / "evals").glob("*.json"))
    older = json.loads(path.read_text())
    for k in ("executed_precision", "threads"):
        del older[k]
    path.chmod(0o644)
    path.write_text(json.dumps(older))
    again = _eval(data, cache)
    assert again.returncode == 0 and "cached result" in again.stderr, again.stderr
    head = again.stdout.splitlines()[0]
    assert head.endswith(", onnxruntime, precision fp32 as asked (not read back from the engine)")
