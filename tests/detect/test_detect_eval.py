"""``picozoo eval``: COCO scoring agrees with pycocotools, the class -> category mapping, and
self-consistency (ground truth = Paddle's post-processed detections) on natural images."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from picozoo.detect.coco import STAT_NAMES, class_to_category, evaluate, load_coco

LABELS = ["person", "cat", "cup", "rocket", "coffee"]  # support.picodet_models.LABELS

#: gapped category ids, like COCO's 1..90: a wrong class -> category mapping scores ~0
CATEGORY_IDS = [1, 3, 4, 9, 17]


def _eval(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    env["PICOZOO_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "picozoo", "eval", *args],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip


def _synthetic_set(tmp_path: Path, seed: int = 0) -> tuple[Path, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"c{c}"} for c in CATEGORY_IDS]
    images = [{"id": i, "file_name": f"{i}.png", "width": 640, "height": 480} for i in range(1, 31)]
    anns, results = [], []
    for im in images:
        for _ in range(int(rng.integers(1, 6))):
            x, y, w, h = rng.uniform(0, 500), rng.uniform(0, 350), *rng.uniform(4, 150, 2)
            cat = int(rng.choice(CATEGORY_IDS))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cat,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
            for _ in range(2):
                box = (np.array([x, y, w, h]) + rng.normal(0, 5, 4)).tolist()
                wrong = rng.uniform() < 0.2
                results.append(
                    {
                        "image_id": im["id"],
                        "score": float(rng.uniform()),
                        "bbox": box,
                        "category_id": int(rng.choice(CATEGORY_IDS)) if wrong else cat,
                    }
                )
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann, results


def test_scores_agree_with_pycocotools(tmp_path: Path) -> None:
    pycoco = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    ann, results = _synthetic_set(tmp_path)
    ours = evaluate(ann, results, list(range(1, 31)))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        ev = pycoco.COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.1 < ours["stats"]["AP"] < 0.9
    np.testing.assert_allclose([ours["stats"][k] for k in STAT_NAMES], ev.stats, rtol=0, atol=1e-9)


def test_contiguous_classes_map_to_sorted_category_ids() -> None:
    assert class_to_category([90, 1, 3]) == {0: 1, 1: 3, 2: 90}
    coco80 = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    mapping = class_to_category(coco80)
    assert len(mapping) == 80 and mapping[0] == 1 and mapping[11] == 13 and mapping[79] == 90


@pytest.fixture(scope="module")
def consistency_set(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path_factory: Any
) -> Path:
    """A COCO-format set whose ground truth is Paddle's post-processed detections > 0.5."""
    from PIL import Image

    from picozoo.detect.detector import Detector
    from picozoo.paddle_dir import find_paddle_model
    from picozoo.runtime import load

    root = tmp_path_factory.mktemp("consistency")
    cfg = find_paddle_model(picodet["pp"]).config()
    paddle = Detector(load("paddle", picodet["pp"], reference=True), cfg)
    images, anns = [], []
    for i, (name, image) in enumerate(natural_images.items(), 1):
        Image.fromarray(image).save(root / f"{name}.png")
        images.append({"id": i, "file_name": f"{name}.png", "height": image.shape[0],
                       "width": image.shape[1]})  # fmt: skip
        truth, _ = paddle.detect(image)
        truth = truth.above(0.5)
        for label, (x1, y1, x2, y2) in zip(truth.labels.tolist(), truth.boxes.tolist(),
                                           strict=True):  # fmt: skip
            anns.append({"id": len(anns) + 1, "image_id": i, "iscrowd": 0,
                         "category_id": CATEGORY_IDS[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": (x2 - x1) * (y2 - y1)})  # fmt: skip
    assert len(anns) > 10
    cats = [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, cfg.labels, strict=True)]
    (root / "ann.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return root


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "precision"), [("onnxruntime", "fp32"), ("openvino", "fp32"),
                                                   ("openvino", "bf16")])  # fmt: skip
def test_self_consistency_on_natural_images(
    picodet: dict[str, Any], consistency_set: Path, tmp_path: Path, engine: str, precision: str
) -> None:
    """The no-post-processing ONNX + picozoo's decoder, on each engine, must score mAP >= 0.99
    against Paddle's own post-processed detections (bf16: reported, a looser bound; on a CPU
    without AVX512-BF16/AMX, refused: see test_detect_precision.py)."""
    from support.cpu import has_bf16

    args = (str(picodet["onnx"]), "--config", str(picodet["nopp"] / "infer_cfg.yml"),
            "--coco", str(consistency_set), "--ann", str(consistency_set / "ann.json"),
            "--format", "json", "--engine", engine, "--precision", precision)  # fmt: skip
    r = _eval(*args, cache=tmp_path / "cache")
    if precision == "bf16" and not has_bf16():
        assert r.returncode == 13 and "openvino cannot run bf16 on this CPU" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["stats"]["AP"] >= (0.99 if precision == "fp32" else 0.8), result["stats"]
    assert result["images"] == 3 and result["engine"] == engine
    assert result["precision"] == result["executed_precision"] == precision
    assert set(result["per_class_ap"]) <= set(LABELS)
    again = _eval(*args, cache=tmp_path / "cache")
    assert json.loads(again.stdout)["stats"] == result["stats"] and "cached" in again.stderr


def test_load_coco_finds_images_and_sorts_categories(tmp_path: Path) -> None:
    ann, _ = _synthetic_set(tmp_path)
    (tmp_path / "val2017").mkdir()
    for i in range(1, 31):
        (tmp_path / "val2017" / f"{i}.png").write_bytes(b"png")
    data = load_coco(tmp_path, ann, limit=5)
    assert data.category_ids == CATEGORY_IDS and [i for i, _ in data.images] == [1, 2, 3, 4, 5]
    assert data.images[0][1] == tmp_path / "val2017" / "1.png"


@pytest.mark.slow
def test_a_model_with_other_classes_is_refused(picodet: dict[str, Any], tmp_path: Path) -> None:
    ann, _ = _synthetic_set(tmp_path)
    data = json.loads(ann.read_text())
    data["categories"] = data["categories"][:2]
    kept = {c["id"] for c in data["categories"]}
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] in kept]
    ann.write_text(json.dumps(data))
    for i in range(1, 31):
        (tmp_path / f"{i}.png").write_bytes(b"png")
    r = _eval(str(picodet["onnx"]), "--config", str(picodet["nopp"] / "infer_cfg.yml"),
              "--coco", str(tmp_path), "--ann", str(ann), cache=tmp_path / "cache")  # fmt: skip
    assert r.returncode == 2 and "the model has 5 classes" in r.stderr


@pytest.mark.slow
def test_the_pipelined_eval_loop_gives_each_image_its_own_detections(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """detect_all overlaps reading, inference and NMS of neighbouring images: every image
    must still get exactly what Detector.detect gives it, in the given order."""
    from PIL import Image

    from picozoo.detect.detector import Detector
    from picozoo.detect.evaluate import detect_all
    from picozoo.paddle_dir import find_paddle_model

    det = Detector.open(picodet["onnx"], config=find_paddle_model(picodet["nopp"]).config())
    names = [*natural_images, "astronaut"]  # an image twice: ids, not pixels, identify them
    paths = []
    for i, name in enumerate(names):
        paths.append(tmp_path / f"{i}-{name}.png")
        Image.fromarray(natural_images[name]).save(paths[-1])
    got = list(detect_all(det, [(100 + i, p) for i, p in enumerate(paths)]))
    assert [image_id for image_id, _, _ in got] == [100, 101, 102, 103]
    seen = set()
    for (_, detections, ms), name in zip(got, names, strict=True):
        want, _ = det.detect(natural_images[name])
        assert ms > 0 and len(want) > 0
        assert np.array_equal(detections.labels, want.labels)
        assert np.array_equal(detections.boxes, want.boxes)
        seen.add(want.boxes.tobytes())
    assert len(seen) == 3  # three different photos: a shifted pipeline would be caught
