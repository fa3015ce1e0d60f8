"""Hostile inputs to ``infer`` and ``eval`` (issue 17, items 4, 5, 10, 13-16), through the
library calls on a real tiny PicoDet-shaped ONNX (``support.tiny_detector``) and real PNGs:
stale eval results, image bombs, FIFOs and devices, colliding outputs, NaN boxes, malformed
COCO files, and a failed eval cache write."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.hostile_images import png_bomb, rows_onnx
from support.infer_cfg import infer_cfg

from picozoo.detect import evaluate, infer
from picozoo.detect.coco import load_coco
from picozoo.detect.images import output_paths
from picozoo.detect.preprocess import read_image
from picozoo.errors import EngineError, UsageError
from picozoo.hub.store import Store
from picozoo.settings import InputLimits, Settings

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

LABELS = ["a", "b", "c"]
CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny no-post-processing ONNX (64 x 64, 3 classes) with its infer_cfg.yml beside it."""
    from support.tiny_detector import build_tiny_detector

    folder = tmp_path_factory.mktemp("tiny")
    (folder / "infer_cfg.yml").write_text(infer_cfg((64, 64), LABELS))
    return build_tiny_detector(folder / "model.onnx")


def _png(path: Path, seed: int = 0, size: tuple[int, int] = (48, 64)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _coco(root: Path, n: int = 4, **changes: Any) -> Path:
    images = [{"id": i, "file_name": f"{i}.png"} for i in range(1, n + 1)]
    for i in range(1, n + 1):
        _png(root / "images" / f"{i}.png", seed=i)
    anns = [{"id": i, "image_id": i, "category_id": 1 + i % 3, "bbox": [4, 4, 30, 20],
             "area": 600, "iscrowd": 0} for i in range(1, n + 1)]  # fmt: skip
    data = {"images": images, "annotations": anns, "categories": [dict(c) for c in CATEGORIES]}
    data.update(changes)
    ann = root / "ann.json"
    ann.write_text(json.dumps(data))
    return ann


def _store(tmp_path: Path, **limits: int) -> Store:
    return Store(Settings(cache_dir=tmp_path / "cache", inputs=InputLimits(**limits)))


def _evaluate(model: Path, ann: Path, store: Store, lines: list[str], **kw: Any) -> Any:
    return evaluate(str(model), ann.parent, ann=ann, store=store, progress=lines.append, **kw)


# -- item 4: the eval cache key --------------------------------------------------------------------
@pytest.mark.slow
def test_eval_cache_is_keyed_by_images_config_and_folder(model: Path, tmp_path: Path) -> None:
    import shutil

    ann = _coco(tmp_path / "coco")
    store = _store(tmp_path)
    lines: list[str] = []
    first = _evaluate(model, ann, store, lines)
    assert not any("cached" in line for line in lines)
    again = _evaluate(model, ann, store, lines)
    assert any("cached result" in line for line in lines) and again.stats == first.stats
    assert first.config["input_size"] == [64, 64] and first.config["labels"] == LABELS

    def cached_after(change: Any, target: Path = ann, **kw: Any) -> bool:
        change()
        seen: list[str] = []
        _evaluate(model, target, store, seen, **kw)
        return any("cached result" in line for line in seen)

    # the same set copied elsewhere: another folder, other files
    copy = tmp_path / "copy"
    assert not cached_after(lambda: shutil.copytree(ann.parent, copy), copy / "ann.json")
    # every image replaced by a 1x1 pixel (same names, same annotation file)
    assert not cached_after(lambda: [_png(p, size=(1, 1)) for p in (copy / "images").iterdir()],
                            copy / "ann.json")  # fmt: skip
    # a changed config (interp, then mean) for the same model file
    cfg = tmp_path / "cfg.yml"
    text = infer_cfg((64, 64), LABELS)
    assert not cached_after(lambda: cfg.write_text(text.replace("interp: 2", "interp: 1")),
                            config=cfg)  # fmt: skip
    assert not cached_after(lambda: cfg.write_text(text.replace("0.485", "0.4")), config=cfg)
    assert cached_after(lambda: None, config=cfg)  # unchanged: served from the cache


def test_a_cache_file_whose_key_differs_is_not_served(model: Path, tmp_path: Path) -> None:
    ann = _coco(tmp_path / "coco")
    store = _store(tmp_path)
    first = _evaluate(model, ann, store, [])
    [path] = list(store.evals_root.glob("*.json"))
    planted = json.loads(path.read_text())
    planted["dataset"], planted["stats"]["AP"] = "another set", 0.99
    path.chmod(0o644)
    path.write_text(json.dumps(planted))
    lines: list[str] = []
    assert _evaluate(model, ann, store, lines).stats == first.stats
    assert not any("cached" in line for line in lines)


# -- item 5: image bombs ---------------------------------------------------------------------------
@pytest.mark.parametrize("side", [30000, pytest.param(60000, marks=pytest.mark.slow)])
def test_image_bombs_are_refused_from_the_header(tmp_path: Path, side: int) -> None:
    png = png_bomb(tmp_path / "bomb.png", side, side)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with pytest.raises(UsageError, match="more than the limit of 100 MP"):
        read_image(png)
    assert time.perf_counter() - t < 2
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb


def test_the_pixel_cap_is_a_setting(tmp_path: Path) -> None:
    png = _png(tmp_path / "p.png", size=(300, 400))
    assert read_image(png).shape == (300, 400, 3)
    with pytest.raises(UsageError, match=r"400 x 300 pixels .* limit of 0.1 MP"):
        read_image(png, max_pixels=100_000)
    env = {"PICOZOO_MAX_PIXELS": "100000", "PICOZOO_MAX_ANNOTATION_BYTES": "2048"}
    assert Settings.from_env(env).inputs == InputLimits(100_000, 2048)
    with pytest.raises(UsageError, match="PICOZOO_MAX_PIXELS"):
        Settings.from_env({"PICOZOO_MAX_PIXELS": "lots"})


def test_a_raised_cap_lets_pillow_size_larger_images(tmp_path: Path) -> None:
    png = png_bomb(tmp_path / "big.png", 20000, 10000)  # 200 MP: above Pillow's own 179 MP
    with pytest.raises(UsageError, match=r"20000 x 10000 pixels \(200 MP\) .* limit of 150 MP"):
        read_image(png, max_pixels=150_000_000)


# -- item 10, 14: FIFOs, devices, empty files ------------------------------------------------------
def _within(seconds: float, fn: Any) -> BaseException | None:
    """Run ``fn`` in a thread; the exception it raised (fails the test if it blocks)."""
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as e:
            box[0] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    return box[0]


def test_fifos_devices_and_empty_files_are_refused(model: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    (tmp_path / "empty.png").write_bytes(b"")
    for path, word in ((fifo, "a FIFO"), (zero, "a character device"),
                       (tmp_path / "empty.png", "is empty")):  # fmt: skip
        e = _within(10, lambda p=path: read_image(p))
        assert isinstance(e, UsageError) and word in str(e), e
    image = _png(tmp_path / "p.png")
    store = _store(tmp_path)
    e = _within(10, lambda: infer(str(model), [image], config=fifo, store=store))
    assert isinstance(e, UsageError) and "a FIFO" in str(e)
    ann = _coco(tmp_path / "coco")
    os.mkfifo(ann.parent / "fifo.json")
    e = _within(10, lambda: _evaluate(model, ann.parent / "fifo.json", store, []))
    assert isinstance(e, UsageError) and "a FIFO" in str(e)


@pytest.mark.slow
def test_a_folder_is_read_as_its_image_files(model: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(3):
        _png(photos / f"p{i}.png", seed=i)
    (photos / "notes.txt").write_text("x")
    (photos / ".hidden.png").write_bytes(b"")
    report = infer(str(model), [photos], out_dir=tmp_path / "out", store=_store(tmp_path),
                   threshold=0.0)  # fmt: skip
    assert {Path(r["image"]).name for r in report.rows} == {"p0.png", "p1.png", "p2.png"}
    assert sorted(p.name for p in report.written) == ["p0.png", "p1.png", "p2.png"]
    (tmp_path / "none").mkdir()
    with pytest.raises(UsageError, match="holds no image"):
        infer(str(model), [tmp_path / "none"], store=_store(tmp_path))


# -- item 13: outputs never overwrite an input, never each other -----------------------------------
def test_outputs_never_overwrite_an_input_or_each_other(model: Path, tmp_path: Path) -> None:
    photo = _png(tmp_path / "o" / "photo.jpg")
    before = photo.read_bytes()
    report = infer(str(model), [photo], out_dir=photo.parent, store=_store(tmp_path))
    assert photo.read_bytes() == before and report.written == [photo.parent / "photo-2.jpg"]
    inputs = [_png(tmp_path / p, seed=i) for i, p in enumerate(["a/x.png", "b/x.png", "a/x.jpg"])]
    report = infer(str(model), inputs, out_dir=tmp_path / "a", store=_store(tmp_path))
    # each keeps its format: x.png and x.jpg are inputs in the output folder
    assert [p.name for p in report.written] == ["x-2.png", "x-3.png", "x-2.jpg"]
    assert inputs[2].read_bytes() != report.written[0].read_bytes()
    assert len({p.read_bytes() for p in report.written}) == 3


def test_output_names_follow_hard_links_and_ignore_case(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "a.png")
    os.link(tmp_path / "in" / "a.png", tmp_path / "a.png")  # an input under another path
    names = output_paths([tmp_path / "in" / "a.png", tmp_path / "in" / "b.png"], tmp_path)
    assert [p.name for p in names] == ["a-2.png", "b.png"]
    names = output_paths([tmp_path / "x" / "a.png", tmp_path / "y" / "A.png"], tmp_path / "o")
    assert [p.name for p in names] == ["a.png", "A-2.png"]  # one file on macOS and Windows


# -- item 14, 15: NaN boxes, classes outside the categories ----------------------------------------
def test_nan_boxes_are_dropped_by_infer_and_refused_by_eval(
    model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pp = rows_onnx(tmp_path / "pp" / "model.onnx")
    (pp.parent / "infer_cfg.yml").write_text(infer_cfg((64, 64), LABELS))
    image = _png(tmp_path / "p.png")
    report = infer(str(pp), [image], out_dir=tmp_path / "out", store=_store(tmp_path))
    assert [r["category"] for r in report.rows] == ["a"] and report.written
    assert "1 detection(s) with a non-finite box or score dropped" in caplog.text
    ann = _coco(tmp_path / "coco")
    with pytest.raises(EngineError, match="non-finite"):
        _evaluate(pp, ann, _store(tmp_path), [])


def test_a_class_outside_the_categories_is_refused(tmp_path: Path) -> None:
    pp = rows_onnx(tmp_path / "pp" / "model.onnx", [[7, 0.9, 1, 1, 9, 9]])
    (pp.parent / "infer_cfg.yml").write_text(infer_cfg((64, 64), []))
    with pytest.raises(UsageError, match=r"detected class 7, but ann\.json has only 3"):
        _evaluate(pp, _coco(tmp_path / "coco"), _store(tmp_path), [])


# -- item 14, 15, 16: COCO files -------------------------------------------------------------------
def _image(**fields: Any) -> list[dict[str, Any]]:
    return [{"id": 1, "file_name": "1.png", **fields}, *({"id": i, "file_name": f"{i}.png"}
                                                         for i in range(2, 5))]  # fmt: skip


BAD_COCO = {
    "no file_name": ({"images": [{"id": 1}]}, "images[0].file_name is missing"),
    "no images": ({"images": []}, "images is empty"),
    "bbox oops": ({"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": "oops"}]},
                  "annotations[0].bbox is 'oops'"),
    "nan bbox": ({"annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                   "bbox": [1, 2, float("nan"), 3]}]}, "not 4 finite numbers"),
    "category outside": ({"annotations": [{"id": 1, "image_id": 1, "category_id": 9,
                                           "bbox": [1, 2, 3, 4]}]}, "9 is not in categories"),
    "image outside": ({"annotations": [{"id": 1, "image_id": 9, "category_id": 1,
                                        "bbox": [1, 2, 3, 4]}]}, "9 is not in images"),
    "duplicate image": ({"images": [*_image(), {"id": 1, "file_name": "2.png"}]},
                        "images[4].id 1 is a duplicate"),
    "float image id": ({"images": [{"id": 1.0, "file_name": "1.png"}]}, "1.0, not an integer"),
    "bool image id": ({"images": [{"id": True, "file_name": "1.png"}]}, "True, not an integer"),
    "duplicate category": ({"categories": [*CATEGORIES, {"id": 2}]}, "categories[3].id 2 is a"),
    "absolute file_name": ({"images": [{"id": 1, "file_name": "/etc/hostname"}]}, "outside"),
    "dotdot file_name": ({"images": [{"id": 1, "file_name": "../ann.json"}]}, "outside"),
    "backslash dotdot": ({"images": [{"id": 1, "file_name": "..\\ann.json"}]}, "outside"),
    "no annotations": ({"annotations": []}, "annotations is empty"),
    "no categories": ({"categories": []}, "categories is empty"),
    "images not a list": ({"images": {"id": 1}}, "images is not a list"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_COCO))
def test_malformed_coco_files_are_one_line_naming_the_field(tmp_path: Path, case: str) -> None:
    changes, message = BAD_COCO[case]
    ann = _coco(tmp_path, **changes)
    with pytest.raises(UsageError, match=None) as e:
        load_coco(tmp_path, ann)
    assert str(ann) in str(e.value) and message in str(e.value), str(e.value)


def test_deep_json_and_oversized_files_are_refused(tmp_path: Path) -> None:
    ann = tmp_path / "deep.json"
    ann.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(UsageError, match="nested too deeply"):
        load_coco(tmp_path, ann)
    ann = _coco(tmp_path)
    with pytest.raises(UsageError, match="PICOZOO_MAX_ANNOTATION_BYTES"):
        load_coco(tmp_path, ann, max_bytes=100)


def test_segmentations_are_dropped_and_limit_without_annotations_refused(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    data = json.loads(ann.read_text())
    for a in data["annotations"]:
        a["segmentation"] = [[1, 2, 3, 4, 5, 6]]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]
    ann.write_text(json.dumps(data))
    coco = load_coco(tmp_path, ann)
    assert all("segmentation" not in a for a in coco.dataset["annotations"])
    with pytest.raises(UsageError, match="have no annotation"):
        load_coco(tmp_path, ann, limit=1)


# -- item 14: the eval cache on a full or read-only disk (real tmpfs mounts) -----------------------
def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


@pytest.mark.slow
@pytest.mark.parametrize("options", ["size=64k", "ro,size=64k"])
def test_eval_prints_its_result_when_caching_it_fails(
    model: Path, tmp_path: Path, options: str
) -> None:
    ann = _coco(tmp_path / "coco", n=2)
    cache = tmp_path / "cache"
    _mount(cache, options)
    try:
        if "ro" not in options:
            with open(cache / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 4096)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
        r = subprocess.run([sys.executable, "-m", "picozoo", "eval", str(model), "--coco",
                            str(ann.parent), "--ann", str(ann), "--format", "json"],
                           capture_output=True, text=True, check=False,
                           env={**env, "PICOZOO_CACHE": str(cache)})  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["images"] == 2
        assert "could not cache the result" in r.stderr and "Traceback" not in r.stderr
        assert not list(cache.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)
