"""``infer`` checks its ``infer_cfg.yml`` against the model before running anything, and says
once when the config has no ``label_list`` (issue 17 items 14, 15). A real tiny PicoDet-shaped
ONNX (64 x 64 fixed input, 3 classes) on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from support.infer_cfg import infer_cfg
from support.tiny_detector import CLASSES, build_tiny_detector

from picozoo.detect import infer
from picozoo.detect.detector import Detector
from picozoo.errors import InferConfigError, ModelFileError
from picozoo.hub.store import Store
from picozoo.paddle_dir import InferConfig
from picozoo.settings import Settings


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    png = root / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(png)
    return build_tiny_detector(root / "model.onnx"), png


def _cfg(tmp_path: Path, size: int = 64, labels: list[str] | None = None) -> Path:
    data = yaml.safe_load(infer_cfg((size, size), ["a", "b", "c"]))
    if labels is None:
        del data["label_list"]
    else:
        data["label_list"] = labels
    path = tmp_path / "infer_cfg.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_size_contradicting_the_model_is_refused_when_it_is_opened(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    model, _ = tiny
    cfg = InferConfig.load(_cfg(tmp_path, size=96, labels=["a", "b", "c"]))
    with pytest.raises(InferConfigError, match=r"\[96, 96\] contradicts the model's fixed input"):
        Detector.open(model, config=cfg)
    short = InferConfig.load(_cfg(tmp_path, labels=["a"]))
    with pytest.raises(InferConfigError, match=f"1 labels, the model has {CLASSES} classes"):
        Detector.open(model, config=short)


def test_a_model_without_an_image_input_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    with pytest.raises(ModelFileError, match=r"identity.onnx: its inputs are 'x'; picozoo feeds"):
        Detector.open(path, config=InferConfig(input_size=(64, 64)))


def test_a_config_without_label_list_is_warned_about_once(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    model, png = tiny
    said: list[str] = []
    store = Store(Settings(cache_dir=tmp_path / "cache"))
    report = infer(str(model), [png, png], config=_cfg(tmp_path), store=store,
                   out_dir=tmp_path / "out", progress=said.append)  # fmt: skip
    warnings = [s for s in said if "no label_list" in s]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert report.rows and {r["category"] for r in report.rows} <= {"0", "1", "2"}
    said.clear()
    infer(str(model), [png], config=_cfg(tmp_path, labels=["a", "b", "c"]), store=store,
          out_dir=tmp_path / "out", progress=said.append)  # fmt: skip
    assert not any("label_list" in s for s in said)


def test_labels_are_checked_against_the_scores_of_engines_declaring_no_shapes(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    """Paddle Inference declares no output shapes: the first scores give the class count."""
    from picozoo.runtime import load

    model, png = tiny
    short = InferConfig.load(_cfg(tmp_path, labels=["a", "b"]))
    det = Detector(load("onnxruntime", model), short)  # opened without the up-front check
    image = np.asarray(Image.open(png).convert("RGB"))
    with pytest.raises(InferConfigError, match=f"2 labels, the model has {CLASSES} classes"):
        det.detect(image)
