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
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import UsageError, require
from ..hub.eval_result import COCO_VAL2017, COCO_VAL2017_IMAGES
from .images import read_regular, stat_regular

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
#: COCO's category ids of :data:`COCO80`, in the same order (1..90 with gaps)
COCO80_IDS = tuple(i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83})
IMAGE_DIRS = ("val2017", "images", ".")
DEFAULT_MAX_ANNOTATION_BYTES = 512 << 20


@dataclass(frozen=True)
class CocoSet:
    """The images to evaluate (``[(image_id, path)]``), the categories by ascending id, the
    validated annotations (``dataset``: images, annotations and categories without
    segmentations, what the scorer reads) and the ``fingerprint`` of it all: the annotation
    file's bytes and, for each image, its path, size, mtime, ctime and inode."""

    ann_file: Path
    images: list[tuple[int, Path]]
    category_ids: list[int]
    category_names: list[str]
    fingerprint: str
    dataset: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    ann_sha256: str = ""  #: sha256 of the annotation file's bytes
    listed_images: int = 0  #: the images the annotation file lists (before ``limit``)

    @property
    def name(self) -> str:
        """``COCO val2017`` when the annotation file is COCO's val2017 (5000 images, COCO's 80
        categories with their ids), else the annotation file's name."""
        coco = (
            self.listed_images == COCO_VAL2017_IMAGES
            and tuple(self.category_ids) == COCO80_IDS
            and tuple(n.replace("_", " ") for n in self.category_names) == COCO80
        )
        return COCO_VAL2017 if coco else self.ann_file.name


def class_to_category(category_ids: Sequence[int]) -> dict[int, int]:
    """Contiguous class index -> COCO category id (ids sorted ascending)."""
    return dict(enumerate(sorted(category_ids)))


def dataset_category_ids(labels: Sequence[str]) -> tuple[int, ...] | None:
    """The data set's category id of each class of a model with ``labels``: COCO's ids for a
    model of COCO's 80 classes (``bus`` is 6), None where the model has no id map (its
    results use the class index).

    >>> dict(zip(COCO80, dataset_category_ids(COCO80)))["bus"], dataset_category_ids(["a"])
    (6, None)
    """
    return COCO80_IDS if tuple(labels) == COCO80 else None


def load_coco(
    coco_dir: Path,
    ann: Path | None = None,
    limit: int | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_ANNOTATION_BYTES,
) -> CocoSet:
    """Read and validate a COCO-format annotation file and locate its images.

    ``ann`` defaults to ``coco_dir/annotations/instances_val2017.json``; images are looked up
    under ``coco_dir/val2017``, ``coco_dir/images``, then ``coco_dir``. ``limit`` keeps the
    first N images by id. A file of more than ``max_bytes`` is refused before it is parsed
    (``PICOZOO_MAX_ANNOTATION_BYTES``); segmentations are dropped as they are parsed, so the
    memory held is the boxes, not the polygons.

    Anything the scorer would crash on or silently miscount is refused with one
    :class:`~picozoo.errors.UsageError` line naming the file and the field: no images, an
    image without an integer ``id`` or a relative ``file_name`` inside ``coco_dir``, duplicate
    image, category or annotation ids, an annotation whose ``bbox`` is not 4 finite numbers
    or whose image or category is not in the file, no annotations at all.
    """
    ann = ann or coco_dir / DEFAULT_ANN
    try:
        os.stat(ann)
    except FileNotFoundError:
        raise UsageError(
            f"no annotation file {ann}",
            hint="point --coco at a COCO folder (val2017/ + annotations/instances_val2017.json) "
            "or give --ann FILE",
        ) from None
    except OSError:
        pass  # read_regular says what is wrong
    raw = read_regular(ann, "annotation file", max_bytes, "PICOZOO_MAX_ANNOTATION_BYTES")
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
        del raw  # parse from the text alone: the bytes would double the peak
        data = json.loads(text, object_hook=_drop_segmentation)
    except RecursionError:
        raise UsageError(f"{ann}: JSON nested too deeply",
                         hint="give a COCO-format instances JSON") from None  # fmt: skip
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{ann} is not JSON: {e}",
                         hint="give a COCO-format instances JSON") from e  # fmt: skip
    del text
    dataset = validate_coco(data, ann)
    del data
    entries = sorted(dataset["images"], key=lambda i: i["id"])
    listed = len(entries)
    if limit is not None:
        entries = entries[:limit]
    kept = {e["id"] for e in entries}
    if not any(a["image_id"] in kept for a in dataset["annotations"]):
        raise UsageError(f"{ann}: the {len(entries)} image(s) evaluated have no annotation",
                         hint="evaluate more images (--limit) or another set")  # fmt: skip
    images = []
    h = hashlib.sha256(digest.encode())
    for entry in entries:
        name = entry["file_name"]
        path = next(
            (coco_dir / d / name for d in IMAGE_DIRS if os.path.lexists(coco_dir / d / name)),
            None,
        )
        if path is None:
            raise UsageError(
                f"image {name} of {ann.name} is not under {coco_dir} (val2017/, images/ or .)",
                hint="point --coco at the folder that holds the images",
            )
        st = stat_regular(path, "image")
        images.append((entry["id"], path))
        h.update(json.dumps([entry["id"], str(path.absolute()), st.st_size, st.st_mtime_ns,
                             st.st_ctime_ns, st.st_ino, st.st_dev]).encode())  # fmt: skip
    cats = sorted(dataset["categories"], key=lambda c: c["id"])
    return CocoSet(ann, images, [c["id"] for c in cats], [c["name"] for c in cats],
                   h.hexdigest(), dataset, ann_sha256=digest, listed_images=listed)  # fmt: skip


#: What the scorer reads of an annotation; everything else (segmentations) is dropped.
_ANN_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")


def _drop_segmentation(obj: dict[str, Any]) -> dict[str, Any]:
    """``json.loads`` hook: forget polygons and RLEs as soon as their object is parsed (they
    are most of a COCO instances file and of its parsed size)."""
    obj.pop("segmentation", None)
    return obj


def validate_coco(data: Any, ann: Path) -> dict[str, Any]:
    """The parts of a parsed COCO annotation file the scorer needs, checked (see
    :func:`load_coco`); refusals name ``ann`` and the field.

    >>> d = validate_coco({"images": [{"id": 1, "file_name": "a.jpg"}], "categories":
    ...     [{"id": 3, "name": "cat"}], "annotations": [{"id": 7, "image_id": 1,
    ...     "category_id": 3, "bbox": [0, 0, 2, 5]}]}, Path("ann.json"))
    >>> d["annotations"]
    [{'id': 7, 'image_id': 1, 'category_id': 3, 'bbox': [0.0, 0.0, 2.0, 5.0], 'area': 10.0, \
'iscrowd': 0}]
    >>> validate_coco({"images": [{"id": 1.0, "file_name": "a.jpg"}]}, Path("ann.json"))
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: ann.json: images[0].id is 1.0, not an integer \
(give a COCO-format instances JSON)
    """

    def bad(where: str, problem: str) -> UsageError:
        return UsageError(f"{ann}: {where} {problem}", hint="give a COCO-format instances JSON")

    def listed(key: str) -> list[Any]:
        value = data.get(key)
        if not isinstance(value, list):
            raise bad(key, "is missing" if value is None else "is not a list")
        return value

    def integer(obj: Any, where: str, key: str) -> int:
        if not isinstance(obj, dict):
            raise bad(where, "is not an object")
        v = obj.get(key)
        if not isinstance(v, int) or isinstance(v, bool):
            raise bad(f"{where}.{key}", "is missing" if v is None else f"is {v!r}, not an integer")
        return v

    if not isinstance(data, dict):
        raise bad("the top level", "is not an object")
    images: list[dict[str, Any]] = []
    image_ids: set[int] = set()
    for i, entry in enumerate(listed("images")):
        image_id = integer(entry, f"images[{i}]", "id")
        if image_id in image_ids:
            raise bad(f"images[{i}].id", f"{image_id} is a duplicate")
        image_ids.add(image_id)
        name = entry.get("file_name")
        if not isinstance(name, str) or not name:
            raise bad(f"images[{i}].file_name", "is missing" if name is None else "is not a name")
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if PurePosixPath(name).is_absolute() or Path(name).is_absolute() or ".." in parts:
            raise bad(f"images[{i}].file_name", f"{name!r} is outside the image folder")
        images.append({k: entry[k] for k in ("id", "file_name", "width", "height") if k in entry})
    if not images:
        raise bad("images", "is empty: nothing to evaluate")
    categories = []
    category_ids: set[int] = set()
    for i, cat in enumerate(listed("categories")):
        cat_id = integer(cat, f"categories[{i}]", "id")
        if cat_id in category_ids:
            raise bad(f"categories[{i}].id", f"{cat_id} is a duplicate")
        category_ids.add(cat_id)
        categories.append({"id": cat_id, "name": str(cat.get("name", cat_id))})
    if not categories:
        raise bad("categories", "is empty")
    annotations = []
    ann_ids: set[int] = set()
    for i, a in enumerate(listed("annotations")):
        where = f"annotations[{i}]"
        ann_id = integer(a, where, "id")
        if ann_id in ann_ids:
            raise bad(f"{where}.id", f"{ann_id} is a duplicate")
        ann_ids.add(ann_id)
        if integer(a, where, "image_id") not in image_ids:
            raise bad(f"{where}.image_id", f"{a['image_id']} is not in images")
        if integer(a, where, "category_id") not in category_ids:
            raise bad(f"{where}.category_id", f"{a['category_id']} is not in categories")
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
            raise bad(f"{where}.bbox", f"is {_short(box)}, not 4 finite numbers")
        if box[2] < 0 or box[3] < 0:
            raise bad(f"{where}.bbox", f"has a negative size {_short(box)}")
        area = a.get("area", box[2] * box[3])
        if not _finite(area) or area < 0:
            raise bad(f"{where}.area", f"is {_short(area)}, not a finite number >= 0")
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise bad(f"{where}.iscrowd", f"is {_short(crowd)}, not 0 or 1")
        annotations.append({"id": ann_id, "image_id": a["image_id"],
                            "category_id": a["category_id"], "bbox": [float(v) for v in box],
                            "area": float(area), "iscrowd": int(crowd)})  # fmt: skip
    if not annotations:
        raise bad("annotations", "is empty: there is nothing to score against")
    return {"images": images, "annotations": annotations, "categories": categories}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def evaluate(
    ann_file: Path | dict[str, Any], results: list[dict[str, Any]], image_ids: Sequence[int]
) -> dict:
    """COCO bbox evaluation of ``results`` on ``image_ids``: the 12 standard stats and the AP
    (IoU 0.5:0.95) of each category. ``ann_file`` is a file or a :func:`validate_coco` dict
    (what was validated is what is scored). COCO's "no ground truth" (-1) is ``None``."""
    fce = require("faster_coco_eval", "eval", package="faster-coco-eval")
    import numpy as np

    with contextlib.redirect_stdout(io.StringIO()):
        gt = fce.COCO(ann_file if isinstance(ann_file, dict) else str(ann_file))
        dt = gt.loadRes(results) if results else fce.COCO()
        ev = fce.COCOeval_faster(gt, dt, iouType="bbox", print_function=lambda *a, **k: None)
        ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {name: float(v) if v >= 0 else None
             for name, v in zip(STAT_NAMES, ev.stats[:12], strict=True)}  # fmt: skip
    precision = np.asarray(ev.eval["precision"])  # [iou, recall, category, area, max dets]
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[int(cat)] = float(p.mean()) if p.size else float("nan")
    return {"stats": stats, "per_class_ap": per_class}
