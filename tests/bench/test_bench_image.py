"""`picozoo bench --image FILE`: a real image, pre-processed as `picozoo infer` does it, fed to
a post-processed PicoDet-like Paddle model instead of seeded noise, and recorded in the cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.bench_helpers import md_tables, run_cli
from support.needs import needs

from picozoo.atomic import sha256_file
from picozoo.bench.records import Document

pytestmark = [needs("paddle", "cv2", "onnxruntime"), pytest.mark.slow]

SIZE = (224, 288)
FAST = ("--threads", "1", "--min-iters", "5", "--min-time", "0", "--warmup", "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PicoDet-like model exported with post-processing (Paddle folder with its
    infer_cfg.yml), its no-post-processing ONNX alone in a folder, and a real photo (PNG)."""
    import cv2
    from support.picodet_models import build_picodet

    from picozoo.convert import convert_paddle_dir_to_onnx

    root = tmp_path_factory.mktemp("bench-image")
    dirs = build_picodet(root / "models", SIZE)
    lone = root / "lone"
    lone.mkdir()
    onnx = convert_paddle_dir_to_onnx(dirs["nopp"], root / "onnx").path
    shutil.copy(onnx, lone / "model.onnx")
    try:
        from skimage import data

        photo = data.astronaut()
    except ImportError:  # a deterministic, non-uniform picture
        yy, xx = np.mgrid[0:300, 0:400]
        photo = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype("uint8")
    image = root / "photo.png"
    cv2.imwrite(str(image), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return {"pp": dirs["pp"], "lone_onnx": lone / "model.onnx", "image": image}


def _doc(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    Document.from_json(data, "stdout")  # a valid picozoo.bench/1 document
    return data


def test_bench_image_feeds_a_post_processed_model_a_real_image(models: dict[str, Path]) -> None:
    image = models["image"]
    r = run_cli("bench", str(models["pp"]), "--engine", "paddle", "--image", str(image), *FAST,
                "--format", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (cell,) = _doc(r.stdout)["cells"]
    assert cell["status"] == "ok", cell.get("error")
    import cv2

    h, w = cv2.imread(str(image)).shape[:2]
    assert cell["image"] == {"name": "photo.png", "sha256": sha256_file(image), "size": [h, w]}
    fed = {i["name"]: i["shape"] for i in cell["inputs"]}
    assert fed["image"] == [1, 3, *SIZE] and fed["scale_factor"] == [1, 2]
    assert cell["input_size"] == list(SIZE)
    assert not any("dynamic size" in n for n in cell["notes"])

    # the report says which image, of which cells; CSV carries it per row
    r = run_cli("bench", str(models["pp"]), "--engine", "paddle", "--image", str(image), *FAST,
                "--format", "md")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        f"- fed image photo.png ({h}x{w}, sha256 {sha256_file(image)}), pre-processed as "
        "`picozoo infer` does with each model's infer_cfg.yml: pp / paddle"
    ) in r.stdout.splitlines()
    assert md_tables(r.stdout)[0][1][md_tables(r.stdout)[0][0].index("Engine")] == "paddle"


def test_the_arrays_fed_are_infers_own(models: dict[str, Path], tmp_path: Path) -> None:
    """What bench writes for the worker is what `picozoo infer`'s Detector feeds the model
    for that image: the same arrays, bit for bit."""
    from picozoo.bench.image import with_image
    from picozoo.bench.targets import file_target
    from picozoo.detect.detector import Detector
    from picozoo.detect.preprocess import read_image
    from picozoo.detect.resolve import resolve_config
    from picozoo.hub.store import Store
    from picozoo.settings import Settings

    target = file_target(models["pp"], "paddle")
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    (fed,) = with_image([target], models["image"], store=store, folder=tmp_path)
    assert fed.feeds is not None and fed.image is not None
    det = Detector.open(models["pp"], config=resolve_config(models["pp"], None), engine="paddle")
    feeds, _ = det.prepare(read_image(models["image"]))
    with np.load(fed.feeds) as given:
        for name, array in feeds.items():
            assert given[name].dtype == array.dtype
            np.testing.assert_array_equal(given[name], array)


def test_bench_image_needs_the_models_pre_processing(models: dict[str, Path]) -> None:
    """An .onnx with no infer_cfg.yml beside it: that cell fails saying why (nothing is
    guessed); a file that is not an image is refused up front (exit 2)."""
    r = run_cli("bench", str(models["lone_onnx"]), "--image", str(models["image"]), *FAST,
                "--format", "json")  # fmt: skip
    assert r.returncode != 0
    (cell,) = _doc(r.stdout)["cells"]
    assert cell["status"] == "failed" and cell["stage"] == "prepare"
    assert (
        "has no infer_cfg.yml beside it: --image needs the model's pre-processing"
        in (cell["error"])
    )
    not_image = models["lone_onnx"].parent / "notes.txt"
    not_image.write_text("not an image\n")
    r = run_cli("bench", str(models["pp"]), "--engine", "paddle", "--image", str(not_image), *FAST)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and "notes.txt" in r.stderr


def test_postprocess_without_an_image_says_what_the_noise_does(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """``--postprocess`` on seeded noise is said in the document's notes (and on stderr);
    with ``--image`` it is not."""
    import picozoo.bench
    from picozoo.hub.store import Store
    from picozoo.settings import Settings

    store = Store(Settings(cache_dir=tmp_path / "cache"))
    said: list[str] = []
    fast = {"threads": [1], "min_iters": 3, "min_time": 0.0, "warmup": 1}
    doc = picozoo.bench.run([str(models["pp"])], engines=["paddle"], postprocess=True,
                            store=store, progress=said.append, **fast)  # fmt: skip
    note = "--postprocess without --image: the models' NMS runs on seeded random inputs"
    assert any(n.startswith(note) for n in doc.notes)
    assert any(s.startswith(f"note: {note}") for s in said)
    doc = picozoo.bench.run([str(models["pp"])], engines=["paddle"], postprocess=True,
                            image=models["image"], store=store, **fast)  # fmt: skip
    assert not any(n.startswith(note) for n in doc.notes)
    assert doc.cells[0].image is not None and doc.cells[0].image.name == "photo.png"
