"""``infer_cfg.yml`` text like PaddleDetection's exporter writes, for test models.

>>> print(infer_cfg((320, 256), ["a", "b"]).splitlines()[11])
  - 256
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def infer_cfg(
    size: tuple[int, int],
    labels: Sequence[str],
    *,
    nms: Mapping[str, Any] | None = None,
    arch: str = "PicoDet",
) -> str:
    """Resize to ``size`` (H, W, interp 2, no keep-ratio), ImageNet normalisation, Permute,
    ``label_list``, and an ``NMS`` section when ``nms`` is given."""
    import yaml

    data: dict[str, Any] = {
        "mode": "paddle",
        "draw_threshold": 0.5,
        "metric": "COCO",
        "use_dynamic_shape": False,
        "arch": arch,
        "min_subgraph_size": 3,
        "Preprocess": [
            {"interp": 2, "keep_ratio": False, "target_size": list(size), "type": "Resize"},
            {
                "is_scale": True,
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "type": "NormalizeImage",
            },
            {"type": "Permute"},
        ],
        "label_list": list(labels),
    }
    if nms is not None:
        data["NMS"] = {"name": "MultiClassNMS", **nms}
    return str(yaml.safe_dump(data, sort_keys=False))
