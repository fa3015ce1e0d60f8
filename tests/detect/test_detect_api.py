"""``picozoo.detect.infer`` and ``picozoo.detect.evaluate``: ``picozoo infer`` / ``picozoo
eval`` as one library call each, on the PicoDet-like test model and natural photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.picodet_models import LABELS

import picozoo.detect
from picozoo.hub.store import Store
from picozoo.settings import Settings

pytestmark = pytest.mark.slow


def _cli(*args: str, cache: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    env["PICOZOO_CACHE"] = str(cache)
    r = subprocess.run([sys.executable, "-m", "picozoo", *args, "--format", "json"],
                       capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_public_api_is_infer_and_evaluate() -> None:
    import picozoo.detect.evaluate  # the modules of the same name do not shadow the functions
    import picozoo.detect.infer

    assert {"infer", "evaluate"} <= set(picozoo.detect.__all__)
    assert callable(picozoo.detect.infer) and callable(picozoo.detect.evaluate)
    assert picozoo.detect.infer.__module__ == "picozoo.detect.api"


def test_infer_and_evaluate_give_what_the_cli_prints(
    picodet: dict[str, Any], natural_images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    from PIL import Image

    photos = []
    for name, image in natural_images.items():
        Image.fromarray(image).save(tmp_path / f"{name}.png")
        photos.append(str(tmp_path / f"{name}.png"))
    cfg = picodet["nopp"] / "infer_cfg.yml"
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    lines: list[str] = []
    report = picozoo.detect.infer(
        str(picodet["onnx"]), photos, config=cfg, threshold=0.5, out_dir=tmp_path / "drawn",
        store=store, progress=lines.append,
    )  # fmt: skip
    assert len(report.rows) > 10 and len(lines) == len(photos) == len(report.timings)
    assert sorted(p.name for p in report.written) == sorted(Path(p).name for p in photos)
    cli = _cli("infer", str(picodet["onnx"]), *photos, "--config", str(cfg), "--threshold", "0.5",
               "--out", str(tmp_path / "cli"), cache=tmp_path / "cache")  # fmt: skip
    assert [(r["image"], r["category"]) for r in cli] == [
        (r["image"], r["category"]) for r in report.rows
    ]
    np.testing.assert_allclose([r["bbox"] for r in cli], [r["bbox"] for r in report.rows],
                               atol=1e-3)  # fmt: skip

    # a COCO set whose ground truth is those detections: the model scores (nearly) 1
    ids = {p: i for i, p in enumerate(photos, 1)}
    images = [{"id": i, "file_name": Path(p).name, "height": natural_images[Path(p).stem].shape[0],
               "width": natural_images[Path(p).stem].shape[1]} for p, i in ids.items()]  # fmt: skip
    anns = [{"id": n, "image_id": ids[r["image"]], "category_id": r["category_id"] + 1,
             "bbox": r["bbox"], "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0}
            for n, r in enumerate(report.rows, 1)]  # fmt: skip
    cats = [{"id": c + 1, "name": name} for c, name in enumerate(LABELS)]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    result = picozoo.detect.evaluate(str(picodet["onnx"]), str(tmp_path), ann=ann, config=cfg,
                                     store=store)  # fmt: skip
    assert result.ap >= 0.99 and result.images == len(photos)
    said: list[str] = []
    again = picozoo.detect.evaluate(str(picodet["onnx"]), tmp_path, ann=str(ann), config=cfg,
                                    store=store, progress=said.append)  # fmt: skip
    assert again.stats == result.stats and any("cached result" in s for s in said)
    cli_eval = _cli("eval", str(picodet["onnx"]), "--coco", str(tmp_path), "--ann", str(ann),
                    "--config", str(cfg), cache=tmp_path / "cache")  # fmt: skip
    assert cli_eval["stats"] == result.stats
