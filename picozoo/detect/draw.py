"""Draw detections on an image: a box, the class name and the score per detection.

>>> import numpy as np
>>> from picozoo.detect.detections import Detections
>>> d = Detections(np.array([0]), np.array([0.9], "float32"),
...                np.array([[10, 10, 60, 40]], "float32"))
>>> draw(np.zeros((64, 64, 3), "uint8"), d, ["cat"]).shape
(64, 64, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DiskError, PicozooError, UsageError, require
from .detections import Detections


def colour(label: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per class id."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((label * 0.61803398875) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image: Any, detections: Detections, labels: Sequence[str] = ()) -> Any:
    """A copy of the RGB ``image`` with every detection drawn."""
    cv2 = require("cv2", "eval", package="opencv-python-headless")
    out = image.copy()
    thick = max(1, round(min(out.shape[:2]) / 300))
    detections = detections.finite()  # NaN or infinite boxes cannot be drawn
    for label, score, box in zip(
        detections.labels.tolist(), detections.scores.tolist(), detections.boxes, strict=True
    ):
        x1, y1, x2, y2 = (round(min(max(float(v), -1e6), 1e6)) for v in box)
        c = colour(label)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thick)
        name = labels[label] if 0 <= label < len(labels) else str(label)
        text = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, 1)
        top = max(y1 - th - base, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), c, -1)
        cv2.putText(out, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return out


def write_image(image: Any, path: Path) -> Path:
    """Write an RGB image (format from the suffix; JPEG at quality 95, as upstream's
    ``visualize`` saves it), atomically."""
    cv2 = require("cv2", "eval", package="opencv-python-headless")
    from ..atomic import write_output

    suffix = path.suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg", ".jpe") else []
    ok, data = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise UsageError(f"cannot encode {path.name}", hint="use a .jpg or .png output name")
    try:
        return write_output(path, data.tobytes())
    except PicozooError:
        raise
    except OSError as e:  # a full or read-only disk: one line (exit 12), nothing half-written
        raise out_error(e, path) from e


def out_error(e: OSError, path: Path) -> PicozooError:
    """The one-line error for failing to write an output at ``path``: a full or read-only
    disk is a :class:`~picozoo.errors.DiskError` (exit 12), anything else a usage error."""
    from ..hub.disk import disk_error

    disk = disk_error(e, path)
    if disk is not None:
        return DiskError(disk.message, hint="free space there, or give another --out")
    return UsageError(f"cannot write {path}: {e.strerror or e}", hint="give another --out")
