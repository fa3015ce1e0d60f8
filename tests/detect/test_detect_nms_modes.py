"""``infer``/``eval`` for real use, with the real commands: ``--nms deploy`` (upstream's
``deploy/python/infer.py`` decoding) against a plain re-statement of it, ``--iou``/``--conf``,
COCO's category ids, folders and globs, ``results.json``, ``eval --save-json``, drawn images
in their input's format, and the ``--threads`` oversubscription warning (issue 18 items 6, 9,
14)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from picozoo.detect.coco import COCO80, COCO80_IDS

pytestmark = pytest.mark.slow


def _run(command: str, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    env["PICOZOO_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "picozoo", command, *args],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip


def _save(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def _deploy_reference(outputs: list[Any], size: tuple[int, int], image_hw: tuple[int, int],
                      iou_threshold: float) -> list[tuple[int, float, list[float]]]:  # fmt: skip
    """PicoDetPostProcess of upstream's deploy code, stated plainly from its description: per
    stride the 1000 best cells by top class score; per class the scores > 0.4, the best 200,
    greedy suppression (IoU + 1e-5 in the denominator, kept at IoU <= threshold), at most 100;
    boxes clipped to the resized image, then scaled to the original. ``(class, score, box)``
    in class order, best first."""
    sy, sx = size[0] / image_hw[0], size[1] / image_hw[1]
    cells: list[tuple[list[float], list[float]]] = []
    for k, stride in enumerate((8, 16, 32, 64)):
        scores, dists = outputs[k][0], outputs[4 + k][0]
        gw = math.ceil(size[1] / stride)
        bins = dists.shape[1] // 4
        best = np.argsort(scores.max(axis=1))[::-1][:1000]
        for i in best.tolist():
            cx, cy = (i % gw + 0.5) * stride, (i // gw + 0.5) * stride
            side = []
            for s in range(4):
                logits = dists[i, s * bins : (s + 1) * bins].astype("float64")
                p = np.exp(logits - logits.max())
                side.append(float((p / p.sum()) @ np.arange(bins)) * stride)
            cells.append(([cx - side[0], cy - side[1], cx + side[2], cy + side[3]],
                          scores[i].tolist()))  # fmt: skip

    def iou(a: list[float], b: list[float]) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
        return w * h / (area(a) + area(b) - w * h + 1e-5)

    out = []
    for c in range(len(cells[0][1])):
        cands = sorted(((s[c], box) for box, s in cells if s[c] > 0.4), key=lambda t: -t[0])
        cands, kept = cands[:200], []
        while cands and len(kept) < 100:
            score, box = cands.pop(0)
            kept.append((score, box))
            cands = [t for t in cands if iou(t[1], box) <= iou_threshold]
        for score, (x1, y1, x2, y2) in kept:
            x1, x2 = (min(max(v, 0.0), size[1]) / sx for v in (x1, x2))
            y1, y2 = (min(max(v, 0.0), size[0]) / sy for v in (y1, y2))
            out.append((c, score, [x1, y1, x2, y2]))
    return out


def test_nms_deploy_decodes_as_upstreams_deploy_code(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """``infer --nms deploy`` gives upstream's deploy detections (score > 0.4, boxes clipped,
    at most 100 per class), said on stderr; the default stays the evaluation settings."""
    from picozoo.detect.detector import Detector
    from picozoo.paddle_dir import find_paddle_model
    from picozoo.runtime import load

    image = natural_images["astronaut"]
    photo = _save(image, tmp_path / "astronaut.png")
    cfg = find_paddle_model(picodet["nopp"]).config()
    assert cfg.nms is not None
    common = (str(picodet["nopp"]), str(photo), "--engine", "paddle", "--format", "json",
              "--threshold", "0")  # fmt: skip
    deploy = _run("infer", *common, "--nms", "deploy", "--out", str(tmp_path / "d"),
                  cache=tmp_path / "c")  # fmt: skip
    default = _run("infer", *common, "--out", str(tmp_path / "e"), cache=tmp_path / "c")
    assert deploy.returncode == 0 and default.returncode == 0, deploy.stderr + default.stderr
    assert "NMS: deploy (upstream deploy/python/infer.py: score > 0.4" in deploy.stderr
    assert "NMS: eval (upstream evaluation settings: score > 0.025, IoU 0.6" in default.stderr
    got = json.loads(deploy.stdout)

    det = Detector(load("paddle", picodet["nopp"], reference=True), cfg)
    feeds, _ = det.prepare(image)
    want = _deploy_reference(det.runtime.run(feeds), picodet["size"], image.shape[:2],
                             cfg.nms.nms_threshold)  # fmt: skip
    assert len(got) == len(want) > 10
    h, w = image.shape[:2]
    for row, (label, score, (x1, y1, x2, y2)) in zip(got, want, strict=True):
        # (the CLI's engine and the reference's differ by float noise, ~1e-6)
        assert row["category"] == cfg.labels[label] and row["score"] == pytest.approx(
            score, abs=1e-4
        )
        assert row["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.05)
        bx, by, bw, bh = row["bbox"]
        assert row["score"] > 0.4 and bx >= 0 and by >= 0
        assert bx + bw <= w + 1e-3 and by + bh <= h + 1e-3
    # the evaluation settings keep 100 in all (deploy: up to 100 per class)
    assert len(json.loads(default.stdout)) <= 100 < len(got)


def test_conf_and_iou_set_the_nms_and_deploy_cuts_strictly(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    photo = _save(natural_images["coffee"], tmp_path / "coffee.png")
    common = (str(picodet["onnx"]), str(photo), "--config", str(picodet["nopp"] / "infer_cfg.yml"),
              "--format", "json", "--threshold", "0", "--out", str(tmp_path / "o"))  # fmt: skip
    loose = json.loads(_run("infer", *common, cache=tmp_path / "c").stdout)
    # greedy NMS decides each candidate by the better ones alone: a score threshold between
    # two kept scores keeps exactly the detections above it
    ranked = sorted({r["score"] for r in loose}, reverse=True)
    assert len(ranked) > 20
    conf = (ranked[10] + ranked[11]) / 2
    cut = _run("infer", *common, "--conf", str(conf), cache=tmp_path / "c")
    assert cut.returncode == 0, cut.stderr
    assert f"score > {conf:g}, IoU 0.6" in cut.stderr
    key = lambda r: (r["category"], r["score"], tuple(r["bbox"]))  # noqa: E731
    assert sorted(map(key, json.loads(cut.stdout))) == sorted(
        key(r) for r in loose if r["score"] > conf
    )
    tight = _run("infer", *common, "--iou", "0.2", cache=tmp_path / "c")
    assert tight.returncode == 0 and "IoU 0.2" in tight.stderr
    assert sorted(map(key, json.loads(tight.stdout))) != sorted(map(key, loose))
    # deploy draws the scores strictly above --threshold
    r = _run("infer", *common[:-4], "--nms", "deploy", "--threshold", "0.5", "--out",
             str(tmp_path / "o"), cache=tmp_path / "c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert all(row["score"] > 0.5 for row in json.loads(r.stdout))


def test_folders_globs_results_json_and_formats(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """A folder and a quoted glob as input; drawn images keep their format; results.json holds
    every detection as COCO results; stderr says what was saved."""
    from PIL import Image

    _save(natural_images["coffee"], tmp_path / "in" / "coffee.png")
    _save(natural_images["chelsea"], tmp_path / "in" / "chelsea.jpg")
    _save(natural_images["astronaut"], tmp_path / "more" / "astronaut.png")
    (tmp_path / "more" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    r = _run("infer", str(picodet["nopp"]), "--engine", "paddle", str(tmp_path / "in"),
             str(tmp_path / "more" / "*"), "--format", "json", "--threshold", "0.3",
             "--out", str(out), cache=tmp_path / "c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"saved 3 images and results.json to {out}" in r.stderr
    assert {p.name for p in out.iterdir()} == {
        "chelsea.jpg", "coffee.png", "astronaut.png", "results.json"}  # fmt: skip
    assert Image.open(out / "coffee.png").format == "PNG"
    assert Image.open(out / "chelsea.jpg").format == "JPEG"
    rows = json.loads(r.stdout)
    results = json.loads((out / "results.json").read_text())
    assert len(results) == len(rows) > 0
    names = ["chelsea.jpg", "coffee.png", "astronaut.png"]  # input order: folder, then glob
    for row, res in zip(rows, results, strict=True):
        assert set(res) == {"image_id", "file_name", "category_id", "bbox", "score"}
        assert res["file_name"] == Path(row["image"]).name
        assert res["image_id"] == names.index(res["file_name"])
        assert (res["category_id"], res["bbox"], res["score"]) == (
            row["category_id"], row["bbox"], row["score"])  # fmt: skip

    nothing = _run("infer", str(picodet["nopp"]), "--engine", "paddle",
                   str(tmp_path / "in" / "*.webp"), cache=tmp_path / "c")  # fmt: skip
    assert nothing.returncode == 2 and "matches no image file" in nothing.stderr
    assert nothing.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def coco_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PicoDet-like no-post-processing model of COCO's 80 classes (its label_list)."""
    from support.infer_cfg import infer_cfg
    from support.picodet_models import NMS, build_picodet

    root = tmp_path_factory.mktemp("coco80")
    nopp = build_picodet(root, (160, 160), classes=80, width=16, cls_bias=-1.0)["nopp"]
    (nopp / "infer_cfg.yml").write_text(infer_cfg((160, 160), list(COCO80), nms=NMS["pp"]))
    return nopp


def test_coco_models_write_cocos_category_ids(
    coco_model: Path, natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """``category_id`` is COCO's id of the class (bus is 6, not its index 5)."""
    photo = _save(natural_images["astronaut"], tmp_path / "000000000139.png")
    r = _run("infer", str(coco_model), str(photo), "--engine", "paddle", "--format", "json",
             "--threshold", "0.3", "--out", str(tmp_path / "o"), cache=tmp_path / "c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len({row["category"] for row in rows}) > 3
    ids = dict(zip(COCO80, COCO80_IDS, strict=True))
    assert ids["bus"] == 6
    for row in rows:
        assert row["category_id"] == ids[row["category"]]
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {res["image_id"] for res in results} == {139}  # COCO's file name is its id
    assert [res["category_id"] for res in results] == [row["category_id"] for row in rows]


def test_eval_nms_settings_are_keyed_and_said_and_save_json(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """A changed NMS setting is measured (not served the default's cached result), printed,
    and recorded; --save-json writes COCO results with the data set's category ids that
    COCO's evaluator scores to the same mAP."""
    from picozoo.detect.coco import evaluate

    ids = [2, 5, 7, 11, 13]
    root = tmp_path / "set"
    images, anns = [], []
    for i, (name, image) in enumerate(natural_images.items(), 1):
        _save(image, root / f"{name}.png")
        h, w = image.shape[:2]
        images.append({"id": i, "file_name": f"{name}.png", "height": h, "width": w})
        anns.append({"id": i, "image_id": i, "category_id": ids[i % 5], "iscrowd": 0,
                     "bbox": [w / 4, h / 4, w / 2, h / 2], "area": w * h / 4})  # fmt: skip
    cats = [{"id": c, "name": n} for c, n in zip(ids, ["person", "cat", "cup", "rocket",
                                                        "coffee"], strict=True)]  # fmt: skip
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    common = (str(picodet["nopp"]), "--coco", str(root), "--ann", str(ann), "--format", "json",
              "--engine", "paddle")  # fmt: skip
    cache = tmp_path / "cache"
    first = _run("eval", *common, cache=cache)
    assert first.returncode == 0, first.stderr
    assert "NMS: eval" in first.stderr and json.loads(first.stdout)["nms_mode"] == "eval"
    changed = _run("eval", *common, "--iou", "0.3", "--save-json", str(tmp_path / "r.json"),
                   cache=cache)  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert "cached" not in changed.stderr and "IoU 0.3" in changed.stderr
    result = json.loads(changed.stdout)
    assert result["nms"]["nms_threshold"] == 0.3
    saved = json.loads((tmp_path / "r.json").read_text())
    assert len(saved) == result["detections"] > 0
    assert {d["category_id"] for d in saved} <= set(ids)
    assert evaluate(ann, saved, [1, 2, 3])["stats"]["AP"] == result["stats"]["AP"]
    again = _run("eval", *common, "--iou", "0.3", cache=cache)
    assert "cached" in again.stderr and json.loads(again.stdout)["stats"] == result["stats"]
    deploy = _run("eval", *common, "--nms", "deploy", cache=cache)
    assert deploy.returncode == 0, deploy.stderr
    assert "cached" not in deploy.stderr and "NMS: deploy" in deploy.stderr
    out = json.loads(deploy.stdout)
    assert out["nms_mode"] == "deploy" and out["nms"]["score_threshold"] == 0.4


def test_threads_above_the_cores_warn(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    from picozoo.threads import usable_cores

    photo = _save(natural_images["coffee"], tmp_path / "coffee.png")
    over = usable_cores() + 1
    r = _run("infer", str(picodet["nopp"]), "--engine", "paddle", str(photo), "--threads",
             str(over), "--out", str(tmp_path / "o"), cache=tmp_path / "c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"warning: --threads {over} exceeds the {usable_cores()} core" in r.stderr
    fine = _run("infer", str(picodet["nopp"]), "--engine", "paddle", str(photo), "--threads", "1",
                "--out", str(tmp_path / "o"), cache=tmp_path / "c")  # fmt: skip
    assert "exceeds" not in fine.stderr
