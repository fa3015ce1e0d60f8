"""COCO-format data sets and COCO evaluation (``faster-coco-eval``, pycocotools-compatible).

A model's contiguous class ``i`` is the ``i``-th category of the annotation file by ascending
id, as PaddleDetection's COCO reader maps them (COCO's 80 classes have ids 1..90 with gaps).

>>> class_to_category([1, 2, 3, 5, 90])
{0: 1, 1: 2, 2: 3, 3: 5, 4: 90}
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError, require

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")  # fmt: skip
DEFAULT_ANN = "annotations/instances_val2017.json"
_COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite "
    "baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork "
    "knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
    "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear "
    "hair_drier toothbrush"
)
#: COCO's 80 class names in contiguous-index order (the label_list of upstream's exports)
COCO80 = tuple(name.replace("_", " ") for name in _COCO80.split(" "))
IMAGE_DIRS = ("val2017", "images", ".")


@dataclass(frozen=True)
class CocoSet:
    """The images to evaluate (``[(image_id, path)]``) and the categories by ascending id."""

    ann_file: Path
    images: list[tuple[int, Path]]
    category_ids: list[int]
    category_names: list[str]
    fingerprint: str


def class_to_category(category_ids: Sequence[int]) -> dict[int, int]:
    """Contiguous class index -> COCO category id (ids sorted ascending)."""
    return dict(enumerate(sorted(category_ids)))


def load_coco(coco_dir: Path, ann: Path | None = None, limit: int | None = None) -> CocoSet:
    """Read a COCO-format annotation file and locate its images.

    ``ann`` defaults to ``coco_dir/annotations/instances_val2017.json``; images are looked up
    under ``coco_dir/val2017``, ``coco_dir/images``, then ``coco_dir``. ``limit`` keeps the
    first N images by id.
    """
    ann = ann or coco_dir / DEFAULT_ANN
    if not ann.is_file():
        raise UsageError(
            f"no annotation file {ann}",
            hint="point --coco at a COCO folder (val2017/ + annotations/instances_val2017.json) "
            "or give --ann FILE",
        )
    try:
        data = json.loads(ann.read_text(encoding="utf-8"))
        cats = sorted(data["categories"], key=lambda c: int(c["id"]))
        entries = sorted(data["images"], key=lambda i: int(i["id"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{ann} is not a COCO annotation file: {e}",
                         hint="give a COCO-format instances JSON") from e  # fmt: skip
    if limit is not None:
        entries = entries[:limit]
    images = []
    for entry in entries:
        name = str(entry["file_name"])
        path = next(
            (coco_dir / d / name for d in IMAGE_DIRS if (coco_dir / d / name).is_file()), None
        )
        if path is None:
            raise UsageError(
                f"image {name} of {ann.name} is not under {coco_dir} (val2017/, images/ or .)",
                hint="point --coco at the folder that holds the images",
            )
        images.append((int(entry["id"]), path))
    h = hashlib.sha256(ann.read_bytes())
    h.update(json.dumps([i for i, _ in images]).encode())
    return CocoSet(ann, images, [int(c["id"]) for c in cats], [str(c.get("name", c["id"]))
                   for c in cats], h.hexdigest())  # fmt: skip


def evaluate(ann_file: Path, results: list[dict[str, Any]], image_ids: Sequence[int]) -> dict:
    """COCO bbox evaluation of ``results`` on ``image_ids``: the 12 standard stats and the AP
    (IoU 0.5:0.95) of each category."""
    fce = require("faster_coco_eval", "eval", package="faster-coco-eval")
    import numpy as np

    with contextlib.redirect_stdout(io.StringIO()):
        gt = fce.COCO(str(ann_file))
        dt = gt.loadRes(results) if results else fce.COCO()
        ev = fce.COCOeval_faster(gt, dt, iouType="bbox", print_function=lambda *a, **k: None)
        ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats[:12], strict=True)}
    precision = np.asarray(ev.eval["precision"])  # [iou, recall, category, area, max dets]
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[int(cat)] = float(p.mean()) if p.size else float("nan")
    return {"stats": stats, "per_class_ap": per_class}
