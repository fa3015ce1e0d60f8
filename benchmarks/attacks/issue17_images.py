"""Issue 17, images and eval inputs: stale eval results (4), image bombs (5), a planted
``<cache>/evals`` link (8), FIFOs and devices as inputs (10), colliding outputs (13), tracebacks
on empty images, NaN boxes, malformed COCO files, full and read-only disks (14), silent garbage
in COCO files (15) and a 200 MB COCO JSON (16).

Every scenario runs ``picozoo infer``/``eval`` on a real tiny PicoDet-shaped ONNX
(``support.tiny_detector``, 64 x 64, 3 classes) with its ``infer_cfg.yml``, and real PNGs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

LABELS = ["a", "b", "c"]
CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]


# -- fixtures -----------------------------------------------------------------------------------
def _model(lab: Any, base: Path | None = None) -> tuple[Path, Path]:
    """(the tiny no-post-processing ONNX, its infer_cfg.yml) in ``base/model`` (default: the
    lab's root, watched for writes; ``lab.scratch`` for files the scenario itself changes)."""
    from support.infer_cfg import infer_cfg
    from support.tiny_detector import build_tiny_detector

    folder = (base or lab.root) / "model"
    onnx, cfg = folder / "model.onnx", folder / "infer_cfg.yml"
    if not onnx.exists():
        build_tiny_detector(onnx)
        cfg.write_text(infer_cfg((64, 64), LABELS))
    return onnx, cfg


def _png(path: Path, seed: int = 0, size: tuple[int, int] = (48, 64)) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _coco(
    lab: Any,
    n: int = 4,
    mutate: Callable[[dict[str, Any]], Any] | None = None,
    base: Path | None = None,
) -> Path:
    """A COCO folder ``base/coco`` (images/1.png... + ann.json; ``base`` as :func:`_model`);
    ``mutate`` edits the annotation dict (or returns the file's text)."""
    root = (base or lab.root) / "coco"
    images, anns = [], []
    for i in range(1, n + 1):
        _png(root / "images" / f"{i}.png", seed=i)
        images.append({"id": i, "file_name": f"{i}.png", "width": 64, "height": 48})
        anns.append({"id": i, "image_id": i, "category_id": 1 + i % 3, "bbox": [4, 4, 30, 20],
                     "area": 600, "iscrowd": 0})  # fmt: skip
    cats = [dict(c) for c in CATEGORIES]
    data: dict[str, Any] = {"images": images, "annotations": anns, "categories": cats}
    text = mutate(data) if mutate else None
    ann = root / "ann.json"
    ann.write_text(text if isinstance(text, str) else json.dumps(data))
    return ann


def _eval(lab: Any, ann: Path, *extra: str, model: Path | None = None, **kw: Any) -> Any:
    onnx, cfg = _model(lab) if model is None else (model, model.parent / "infer_cfg.yml")
    return lab.picozoo("eval", str(onnx), "--config", str(cfg), "--coco", str(ann.parent),
                       "--ann", str(ann), *extra, **kw)  # fmt: skip


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


def register(suite: Any) -> None:
    scenario, Verdict = suite.scenario, suite.Verdict

    # item 4: eval results served stale -----------------------------------------------------------
    @scenario("eval cache: every image replaced by a 1x1 pixel", 4, quick=False, issue=17)
    def stale_images(lab: Any) -> Any:
        ann = _coco(lab, base=lab.scratch)  # the scenario rewrites the images
        first = _eval(lab, ann)
        for p in (ann.parent / "images").glob("*.png"):
            _png(p, size=(1, 1))
        again = _eval(lab, ann)
        stale = "cached result" in again.stderr
        same = again.stdout == first.stdout
        return Verdict(again, frozenset({0}), first.rc == 0 and not stale,
                       "served the cached result" if stale else
                       f"measured again ({'same' if same else 'new'} scores)")  # fmt: skip

    @scenario("eval cache: infer_cfg.yml changed (interp, mean)", 4, quick=False, issue=17)
    def stale_config(lab: Any) -> Any:
        ann = _coco(lab)
        onnx, cfg = _model(lab, base=lab.scratch)  # the scenario rewrites the config
        first = _eval(lab, ann, model=onnx)
        cached = _eval(lab, ann, model=onnx)
        cfg.write_text(cfg.read_text().replace("interp: 2", "interp: 1").replace("0.485", "0.4"))
        again = _eval(lab, ann, model=onnx)
        ok = first.rc == 0 and "cached result" in cached.stderr
        ok = ok and "cached result" not in again.stderr
        note = "second run cached, changed config measured" if ok else "served stale"
        return Verdict(again, frozenset({0}), ok, note)

    # item 5: image bombs -------------------------------------------------------------------------
    def bomb(side: int) -> Callable[[Any], Any]:
        def run(lab: Any) -> Any:
            from support.hostile_images import png_bomb

            onnx, cfg = _model(lab)
            png = png_bomb(lab.root / "bomb.png", side, side)
            r = lab.picozoo("infer", str(onnx), str(png), "--config", str(cfg),
                            "--out", str(lab.scratch / "out"), timeout=60)  # fmt: skip
            ok = r.seconds < 10 and r.peak_rss_mb < 400 and "limit" in r.stderr
            note = f"{png.stat().st_size / 1e3:.0f} KB PNG; {r.seconds:.1f} s, "
            return Verdict(r, frozenset({2}), ok, note + f"peak {r.peak_rss_mb:.0f} MB")

        return run

    scenario("PNG bomb 30000x30000 (875 KB)", 5, issue=17)(bomb(30000))
    scenario("PNG bomb 60000x60000", 5, quick=False, issue=17)(bomb(60000))

    # item 8: a planted <cache>/evals link --------------------------------------------------------
    @scenario("symlink planted at <cache>/evals (eval)", 8, issue=17)
    def planted_evals(lab: Any) -> Any:
        ann = _coco(lab, n=2)
        lab.cache.mkdir(parents=True, exist_ok=True)
        (lab.cache / "evals").symlink_to(lab.outside)
        r = _eval(lab, ann)
        return Verdict(r, frozenset({6}), not list(lab.outside.glob("*.json")),
                       "nothing written through the link")  # fmt: skip

    # item 10: FIFOs and devices as inputs --------------------------------------------------------
    def fifo(role: str) -> Callable[[Any], Any]:
        def run(lab: Any) -> Any:
            onnx, cfg = _model(lab)
            image = _png(lab.root / "photo.png")
            pipe = lab.root / ("fifo.yml" if role == "config" else "fifo.jpg")
            os.mkfifo(pipe)
            if role == "image":
                args = ["infer", str(onnx), str(pipe), "--config", str(cfg)]
            elif role == "config":
                args = ["infer", str(onnx), str(image), "--config", str(pipe)]
            else:
                ann = _coco(lab, n=2)
                pipe.rename(ann.parent / "fifo.json")
                args = ["eval", str(onnx), "--config", str(cfg), "--coco", str(ann.parent),
                        "--ann", str(ann.parent / "fifo.json")]  # fmt: skip
            r = lab.picozoo(*args, "--out", str(lab.scratch / "o"), timeout=20) if (
                args[0] == "infer") else lab.picozoo(*args, timeout=20)  # fmt: skip
            return Verdict(r, frozenset({2}), "FIFO" in r.stderr, f"{r.seconds:.1f} s")

        return run

    scenario("FIFO as the image", 10, issue=17)(fifo("image"))
    scenario("FIFO as --config", 10, issue=17)(fifo("config"))
    scenario("FIFO as --ann", 10, issue=17)(fifo("ann"))

    @scenario("a folder of images (and a FIFO beside them)", 10, issue=17)
    def folder(lab: Any) -> Any:
        onnx, cfg = _model(lab)
        photos = lab.scratch / "photos"
        for i in range(3):
            _png(photos / f"p{i}.png", seed=i)
        (photos / "notes.txt").write_text("not an image")
        os.mkfifo(photos / ".hidden.jpg")  # hidden files are not images of the folder
        out = lab.scratch / "out"
        r = lab.picozoo("infer", str(onnx), str(photos), "--config", str(cfg), "--out", str(out),
                        timeout=30)  # fmt: skip
        names = sorted(p.name for p in out.glob("*")) if out.is_dir() else []
        # drawn in each input's format, plus the COCO results file
        ok = names == ["p0.png", "p1.png", "p2.png", "results.json"]
        return Verdict(r, frozenset({0}), ok, str(names))

    # item 13: outputs collide --------------------------------------------------------------------
    @scenario("infer --out is the folder of the input photo.jpg", 13, issue=17)
    def out_is_input_dir(lab: Any) -> Any:
        onnx, cfg = _model(lab)
        photo = _png(lab.scratch / "o" / "photo.jpg")
        before = photo.read_bytes()
        r = lab.picozoo("infer", str(onnx), str(photo), "--config", str(cfg),
                        "--out", str(photo.parent))  # fmt: skip
        drawn = photo.parent / "photo-2.jpg"
        ok = photo.read_bytes() == before and drawn.is_file()
        return Verdict(r, frozenset({0}), ok, "input kept, drawn as photo-2.jpg" if ok else "")

    @scenario("infer a/x.png b/x.png a/x.jpg with one --out", 13, issue=17)
    def same_stems(lab: Any) -> Any:
        onnx, cfg = _model(lab)
        inputs = [_png(lab.scratch / p, seed=i) for i, p in enumerate(["a/x.png", "b/x.png",
                                                                       "a/x.jpg"])]  # fmt: skip
        out = lab.scratch / "o"
        r = lab.picozoo("infer", str(onnx), *map(str, inputs), "--config", str(cfg),
                        "--out", str(out))  # fmt: skip
        names = sorted(p.name for p in out.glob("*")) if out.is_dir() else []
        # three inputs, three drawings (each in its input's format), none overwritten
        ok = names == ["results.json", "x-2.png", "x.jpg", "x.png"]
        return Verdict(r, frozenset({0}), ok, str(names))

    # item 14: tracebacks -------------------------------------------------------------------------
    def bad_image(make: Callable[[Path], Path], word: str) -> Callable[[Any], Any]:
        def run(lab: Any) -> Any:
            onnx, cfg = _model(lab)
            image = make(lab.root / "bad.png")
            r = lab.picozoo("infer", str(onnx), str(image), "--config", str(cfg),
                            "--out", str(lab.scratch / "o"), timeout=20)  # fmt: skip
            return Verdict(r, frozenset({2}), word in r.stderr)

        return run

    def empty(p: Path) -> Path:
        p.write_bytes(b"")
        return p

    def dev_zero(p: Path) -> Path:
        p.symlink_to("/dev/zero")
        return p

    scenario("0-byte image", 14, issue=17)(bad_image(empty, "empty"))
    scenario("symlink to /dev/zero as the image", 14, issue=17)(bad_image(dev_zero, "device"))

    @scenario("NaN box from a post-processed ONNX (infer draws the rest)", 14, issue=17)
    def nan_infer(lab: Any) -> Any:
        from support.hostile_images import rows_onnx

        _, cfg = _model(lab)
        onnx = rows_onnx(lab.root / "pp" / "model.onnx")
        (onnx.parent / "infer_cfg.yml").write_text(cfg.read_text())
        out = lab.scratch / "o"
        r = lab.picozoo("infer", str(onnx), str(_png(lab.root / "p.png")), "--out", str(out))
        ok = (out / "p.png").is_file() and "non-finite" in r.stderr and r.stdout.count("\n") == 1
        return Verdict(r, frozenset({0}), ok, "the NaN box dropped with a warning" if ok else "")

    def coco_case(mutate: Callable[[dict[str, Any]], Any], word: str, expect: int = 2,
                  model: str = "") -> Callable[[Any], Any]:  # fmt: skip
        def run(lab: Any) -> Any:
            ann = _coco(lab, mutate=mutate)
            onnx = None
            if model == "nan":
                from support.hostile_images import rows_onnx

                _, cfg = _model(lab)
                onnx = rows_onnx(lab.root / "pp" / "model.onnx")
                (onnx.parent / "infer_cfg.yml").write_text(cfg.read_text())
            r = _eval(lab, ann, model=onnx, timeout=30)
            return Verdict(r, frozenset({expect}), word in r.stderr)

        return run

    def drop_file_name(d: dict[str, Any]) -> None:
        del d["images"][0]["file_name"]

    def no_images(d: dict[str, Any]) -> None:
        d["images"] = []

    def bbox_oops(d: dict[str, Any]) -> None:
        d["annotations"][0]["bbox"] = "oops"

    def deep(d: dict[str, Any]) -> str:
        return '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}"

    def unknown_class(d: dict[str, Any]) -> None:
        d["annotations"][0]["category_id"] = 99

    scenario("COCO image without file_name", 14, issue=17)(coco_case(drop_file_name, "file_name"))
    scenario("COCO images: []", 14, issue=17)(coco_case(no_images, "images"))
    scenario('COCO bbox: "oops"', 14, issue=17)(coco_case(bbox_oops, "bbox"))
    scenario("COCO 100k-deep JSON", 14, issue=17)(coco_case(deep, "deep"))
    scenario("COCO category_id outside categories", 14, issue=17)(
        coco_case(unknown_class, "category_id")
    )

    @scenario("model class id outside the COCO categories", 14, issue=17)
    def class_outside(lab: Any) -> Any:
        from support.hostile_images import rows_onnx

        ann = _coco(lab)
        onnx = rows_onnx(lab.root / "pp" / "model.onnx", [[7, 0.9, 1, 1, 9, 9]])
        text = _model(lab)[1].read_text().split("label_list")[0]  # no labels: not checked early
        (onnx.parent / "infer_cfg.yml").write_text(text)
        r = _eval(lab, ann, model=onnx)
        return Verdict(r, frozenset({2}), "class 7" in r.stderr)

    @scenario("full disk during infer --out", 14, issue=17)
    def full_out(lab: Any) -> Any:
        onnx, cfg = _model(lab)
        photo = _png(lab.root / "p.png", size=(400, 400))
        with suite.tmpfs(lab.scratch / "full", "size=64k") as mounted:
            if mounted:
                _fill(lab.scratch / "full")
            r = lab.picozoo("infer", str(onnx), str(photo), "--config", str(cfg),
                            "--out", str(lab.scratch / "full" / "o"))  # fmt: skip
            left = list((lab.scratch / "full").rglob("*.tmp"))
        note = "ENOSPC, nothing half-written" if mounted else "cannot mount a tmpfs"
        return Verdict(r, frozenset({12}), mounted and not left, note)

    def cache_fault(options: str) -> Callable[[Any], Any]:
        def run(lab: Any) -> Any:
            ann = _coco(lab, n=2)
            _model(lab)
            with suite.tmpfs(lab.cache, options) as mounted:
                if mounted and "ro" not in options.split(","):
                    _fill(lab.cache)
                r = _eval(lab, ann, "--format", "json")
            try:
                printed = json.loads(r.stdout)["images"] == 2
            except (ValueError, KeyError, TypeError):
                printed = False
            ok = mounted and printed and "could not cache" in r.stderr
            return Verdict(r, frozenset({0}), ok,
                           "result printed, caching warned" if ok else
                           ("" if mounted else "cannot mount a tmpfs"))  # fmt: skip

        return run

    scenario("full disk while caching an eval result", 14, issue=17)(cache_fault("size=64k"))
    scenario("read-only cache for eval (EROFS)", 14, issue=17)(cache_fault("ro,size=64k"))

    # item 15: silent garbage ---------------------------------------------------------------------
    def dup_image(d: dict[str, Any]) -> None:
        d["images"].append({**d["images"][0], "file_name": "2.png"})

    def float_id(d: dict[str, Any]) -> None:
        d["images"][0]["id"] = 1.7

    def dup_category(d: dict[str, Any]) -> None:
        d["categories"].append({"id": 1, "name": "again"})

    def absolute(d: dict[str, Any]) -> None:
        d["images"][0]["file_name"] = "/etc/hostname"

    def dotdot(d: dict[str, Any]) -> None:
        d["images"][0]["file_name"] = "../../model/model.onnx"

    def no_annotations(d: dict[str, Any]) -> None:
        d["annotations"] = []

    for name, mutate, word in (
        ("COCO duplicate image ids", dup_image, "duplicate"),
        ("COCO float image id", float_id, "not an integer"),
        ("COCO duplicate category ids", dup_category, "duplicate"),
        ("COCO file_name /abs", absolute, "outside"),
        ("COCO file_name ../x", dotdot, "outside"),
        ("COCO without annotations", no_annotations, "annotations"),
    ):
        scenario(name, 15, issue=17)(coco_case(mutate, word))
    scenario("NaN model boxes in eval", 15, issue=17)(
        coco_case(lambda d: None, "non-finite", expect=13, model="nan")
    )

    # item 16: large COCO files -------------------------------------------------------------------
    @scenario("COCO JSON above PICOZOO_MAX_ANNOTATION_BYTES", 16, issue=17)
    def ann_cap(lab: Any) -> Any:
        ann = _coco(lab)
        r = _eval(lab, ann, env={"PICOZOO_MAX_ANNOTATION_BYTES": "200"})
        return Verdict(r, frozenset({2}), "PICOZOO_MAX_ANNOTATION_BYTES" in r.stderr)

    @scenario("200 MB COCO JSON (segmentations)", 16, quick=False, issue=17)
    def big_coco(lab: Any) -> Any:
        ann = _coco(lab, n=50)
        data = json.loads(ann.read_text())
        poly = "[[" + ", ".join(f"{i % 60}.25" for i in range(120)) + "]]"
        with open(ann, "w") as f:
            head = json.dumps({"images": data["images"], "categories": CATEGORIES})[:-1]
            f.write(head + ', "annotations": [')
            k = 0
            while f.tell() < 200_000_000:
                k += 1
                f.write(("," if k > 1 else "") + json.dumps(
                    {"id": k, "image_id": 1 + k % 50, "category_id": 1 + k % 3,
                     "bbox": [1.0, 2.0, 20.5, 10.25], "area": 210.1, "iscrowd": 0}
                )[:-1] + f', "segmentation": {poly}}}')  # fmt: skip
            f.write("]}")
        r = _eval(lab, ann, timeout=300)
        return Verdict(r, frozenset({0}), r.peak_rss_mb < 1000,
                       f"{ann.stat().st_size / 1e6:.0f} MB JSON: peak {r.peak_rss_mb:.0f} MB, "
                       f"{r.seconds:.0f} s")  # fmt: skip
