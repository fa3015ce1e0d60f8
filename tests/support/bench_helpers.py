"""Helpers of the bench tests: small real ONNX models built with onnx.helper, the CLI in a
subprocess, and a Markdown table parser. Imported as ``support.bench_helpers``, like every
test helper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def build_conv_onnx(
    path: Path,
    *,
    size: int = 64,
    channels: int = 16,
    layers: int = 3,
    dynamic: bool = False,
    scale_factor: bool = False,
) -> Path:
    """A few Conv+Relu layers (input ``image`` 1x3xSIZExSIZE, or N x 3 x H x W with
    ``dynamic``), seeded weights, opset 13. ``scale_factor`` adds PicoDet's second input
    ``scale_factor`` [N, 2], multiplied into the output like upstream's post-processing."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    cin, prev = 3, "image"
    for i in range(layers):
        w = rng.standard_normal((channels, cin, 3, 3)).astype(np.float32) * 0.1
        b = np.zeros(channels, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(
            helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        cin, prev = channels, f"r{i}"
    in_shape: list[int | str] = ["N", 3, "H", "W"] if dynamic else [1, 3, size, size]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)]
    if scale_factor:
        inputs.append(helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, ["N", 2]))
        nodes.append(helper.make_node("ReduceSum", ["scale_factor"], ["sf_sum"], keepdims=0))
        nodes.append(helper.make_node("Mul", [prev, "sf_sum"], ["scaled"]))
        prev = "scaled"
    out_shape: list[int | str] = ["N", channels, "H", "W"] if dynamic else [1, channels, size, size]
    graph = helper.make_graph(
        nodes,
        "tiny_conv",
        inputs,
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


#: ``python -c`` program: pin this process (and so its workers) to CPU 0, then run the CLI.
ONE_CPU = (
    "import os, sys; os.sched_setaffinity(0, {0}); sys.argv[0] = 'picozoo'; "
    "from picozoo.cli import main; main(sys.argv[1:])"
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, one_cpu: bool = False
) -> Any:
    """The real console entry point in a subprocess (``one_cpu``: allowed to run on CPU 0
    only, as under ``taskset -c 0``)."""
    entry = ["-c", ONE_CPU] if one_cpu else ["-m", "picozoo"]
    return subprocess.run(
        [sys.executable, *entry, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=600,
    )


def md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text`` as rows of cells (header row first, no align row)."""
    import re

    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


#: ``sitecustomize.py`` that makes importing the modules named in PICOZOO_TEST_BLOCK fail, as
#: when their package is not installed (``importlib.util.find_spec`` fails too)
_BLOCKER = """
import os, sys
_BLOCKED = set(filter(None, os.environ.get("PICOZOO_TEST_BLOCK", "").split(",")))


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
"""


def blocked_env(tmp_path: Path, modules: list[str], env: dict[str, str] | None = None) -> dict:
    """An environment whose Python processes (the CLI and every bench worker it starts) cannot
    import ``modules``, as if those packages were not installed."""
    import os

    folder = tmp_path / "blocker"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_BLOCKER)
    base = dict(os.environ if env is None else env)
    path = [str(folder), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
    return {**base, "PYTHONPATH": os.pathsep.join(path), "PICOZOO_TEST_BLOCK": ",".join(modules)}


def natural_images(gray: bool = False) -> dict[str, Any]:
    """scikit-image's colour photos as RGB uint8 (``gray``: also its grey-scale ones, as RGB).

    Without scikit-image (a test tool, not in ``picozoo[all]``: the benchmark scripts run
    without it), matplotlib's sample photo and views of it (mirrored, cropped, grey)."""
    import importlib.util

    import numpy as np

    try:
        has_skimage = importlib.util.find_spec("skimage") is not None
    except ImportError:  # blocked (tests of a base install): as if not installed
        has_skimage = False
    if not has_skimage:
        return _matplotlib_photos(gray)
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket"]
    out = {n: getattr(data, n)() for n in names}
    if gray:
        for n in ("camera", "coins", "moon", "text"):
            out[n] = np.repeat(getattr(data, n)()[:, :, None], 3, axis=2)
    return out


def _matplotlib_photos(gray: bool) -> dict[str, Any]:
    """matplotlib's sample photo (Grace Hopper, 600x512) and views of it, RGB uint8."""
    import matplotlib.cbook
    import numpy as np
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = np.asarray(Image.open(f).convert("RGB"))
    out = {
        "hopper": photo,
        "hopper_mirrored": np.ascontiguousarray(photo[:, ::-1]),
        "hopper_face": np.ascontiguousarray(photo[60:380, 120:460]),
        "hopper_wide": np.ascontiguousarray(np.concatenate([photo, photo[:, ::-1]], axis=1)),
    }
    if gray:
        grey = photo.mean(axis=2).astype(np.uint8)
        out["hopper_grey"] = np.repeat(grey[:, :, None], 3, axis=2)
    return out


def self_consistency_set(
    reference: Any,
    out: Path,
    images: dict[str, Any] | None = None,
    labels: list[str] | None = None,
) -> Path:
    """A COCO-format set whose ground truth is a model's own detections scoring above 0.5, as
    tests/detect/test_detect_eval.py builds it: ``reference`` is a
    :class:`picozoo.detect.detector.Detector`, or a Paddle folder (run on Paddle Inference with
    its reference kernels; an export with NMS gives Paddle's own post-processing). ``images``:
    name -> RGB uint8 (default: :func:`natural_images`); ``labels``: one category each (ids
    1..C, default: the model's ``label_list``). Writes the images and ``ann.json`` into
    ``out``; returns the annotation file."""
    import json

    from PIL import Image

    from picozoo.detect.detector import Detector
    from picozoo.paddle_dir import find_paddle_model
    from picozoo.runtime import load

    if not isinstance(reference, Detector):
        cfg = find_paddle_model(reference).config()
        reference = Detector(load("paddle", reference, reference=True), cfg)
    images = natural_images() if images is None else images
    out.mkdir(parents=True, exist_ok=True)
    entries, anns = [], []
    for i, (name, image) in enumerate(images.items(), 1):
        Image.fromarray(image).save(out / f"{name}.png")
        h, w = image.shape[:2]
        entries.append({"id": i, "file_name": f"{name}.png", "height": h, "width": w})
        truth = reference.detect(image)[0].above(0.5)
        for label, (x1, y1, x2, y2) in zip(truth.labels.tolist(), truth.boxes.tolist(),
                                           strict=True):  # fmt: skip
            anns.append({"id": len(anns) + 1, "image_id": i, "iscrowd": 0,
                         "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "area": (x2 - x1) * (y2 - y1)})  # fmt: skip
    names = labels if labels is not None else (reference.config.labels or [])
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    ann = out / "ann.json"
    ann.write_text(json.dumps({"images": entries, "annotations": anns, "categories": cats}))
    return ann
