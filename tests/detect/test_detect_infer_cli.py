"""``picozoo infer`` on real files: the trained layout detector on synthetic pages, and the
PicoDet-like test models with and without post-processing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.detections import assert_same_detections
from support.pages import CDLA_LABELS, LAYOUT_INFER_CFG, draw_page
from support.trained import layout_cdla_path

from picozoo.detect.detections import Detections

pytestmark = pytest.mark.slow


def _infer(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return subprocess.run([sys.executable, "-m", "picozoo", "infer", *args],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _write_png(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def test_trained_layout_detector_finds_the_page_elements(tmp_path: Path) -> None:
    cfg = tmp_path / "infer_cfg.yml"
    cfg.write_text(LAYOUT_INFER_CFG)
    pages, truth = [], {}
    for seed in (0, 1):
        image, boxes = draw_page(seed)
        pages.append(str(_write_png(image, tmp_path / f"page{seed}.png")))
        truth[pages[-1]] = boxes
    r = _infer(str(layout_cdla_path()), *pages, "--config", str(cfg), "--format", "json",
               "--out", str(tmp_path / "out"), "--threads", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["category"] for row in rows} <= set(CDLA_LABELS)
    for page, boxes in truth.items():
        found = [row for row in rows if row["image"] == page]
        for label, box in boxes:
            best = max(
                (_iou(box, [x, y, x + w, y + h]) for x, y, w, h in
                 (row["bbox"] for row in found if row["category"] == label)),
                default=0.0,
            )  # fmt: skip
            assert best > (0.8 if label in ("table", "figure") else 0.5), (page, label, best)
        assert (tmp_path / "out" / Path(page).name).stat().st_size > 10_000
    assert "inference" in r.stderr and "postprocess" in r.stderr


def _detections(rows: list[dict[str, Any]]) -> Detections:
    """``infer --format json`` rows as :class:`Detections` (labels: category names)."""
    return Detections(
        np.array([d["category"] for d in rows]),
        np.array([d["score"] for d in rows], "float32"),
        np.array([d["bbox"] for d in rows], "float32").reshape(-1, 4),
    )


def test_infer_runs_paddle_folders_with_and_without_post_processing(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    photo = str(_write_png(natural_images["coffee"], tmp_path / "coffee.png"))
    results = {}
    for variant in ("nopp", "pp"):
        r = _infer(str(picodet[variant]), photo, "--engine", "paddle", "--format", "json",
                   "--threshold", "0.5", "--out", str(tmp_path / variant))  # fmt: skip
        assert r.returncode == 0, r.stderr
        results[variant] = json.loads(r.stdout)
    assert len(results["pp"]) > 0 and all(row["score"] >= 0.5 for row in results["pp"])
    # the post-processed export runs as it is; picozoo's decoder gives the same detections
    # (in the same order, but for ties within the score tolerance)
    assert_same_detections(
        _detections(results["nopp"]), _detections(results["pp"]), score_atol=1e-4, box_atol=1e-2
    )
    assert (tmp_path / "pp" / "coffee.png").is_file()


def test_a_bare_onnx_needs_its_config(picodet: dict[str, Any], tmp_path: Path) -> None:
    image = _write_png(np.zeros((32, 32, 3), "uint8"), tmp_path / "black.png")
    r = _infer(str(picodet["onnx"]), str(image))
    assert r.returncode == 2 and "--config infer_cfg.yml" in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("engine", ["openvino", "mnn", "ncnn"])
def test_infer_on_every_engine_matches_onnxruntime(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path, engine: str
) -> None:
    """infer --engine E converts the ONNX for E (cached in --cache) and finds the same
    detections as ONNX Runtime at fp32."""
    photo = str(_write_png(natural_images["chelsea"], tmp_path / "chelsea.png"))
    cfg = str(picodet["nopp"] / "infer_cfg.yml")
    common = ("--config", cfg, "--format", "json", "--threshold", "0.6",
              "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))  # fmt: skip
    ref = _infer(str(picodet["onnx"]), photo, *common)
    got = _infer(str(picodet["onnx"]), photo, "--engine", engine, *common)
    assert ref.returncode == 0 and got.returncode == 0, got.stderr

    # equal scores may come in another order when the engines differ by 1e-7: compare sorted
    def rows(r: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
        key = lambda d: (d["category"], round(d["score"], 4), d["bbox"])  # noqa: E731
        return sorted(json.loads(r.stdout), key=key)

    a, b = rows(ref), rows(got)
    assert len(a) > 3 and [d["category"] for d in a] == [d["category"] for d in b]
    assert [d["score"] for d in a] == pytest.approx([d["score"] for d in b], abs=1e-4)
    assert np.allclose([d["bbox"] for d in a], [d["bbox"] for d in b], rtol=1e-3, atol=0.1)
