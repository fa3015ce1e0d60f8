"""Builders of small Paddle inference models, in both on-disk formats, for convert tests.

Each model is a miniature PicoDet-like head: conv (stride 2) -> depthwise conv -> batch norm ->
a class branch (1x1 conv + softmax -> ``scores`` of shape [B, 5, N]) and a box branch (two
Linear layers -> ``boxes`` of shape [B, N, 4]). With ``scale_factor`` the model takes a second
input ``scale_factor`` [B, 2] and divides the boxes by it, like upstream's post-processing.
The ``*-nms`` variants end like upstream's exported-with-post-processing models: boxes decoded
around anchor points, then ``multiclass_nms3`` -> ``[K, 6]`` rows (label, score, x1, y1, x2, y2)
and the per-image box count.

Formats:

* ``pir``: ``paddle.jit.save`` with the default PIR API -> ``model.json`` + ``model.pdiparams``;
* ``legacy``: ``FLAGS_enable_pir_api=0`` before importing paddle -> ``model.pdmodel`` +
  ``model.pdiparams`` (the format of every upstream tarball).

The flag must be set before paddle is imported, so each format is built in a child process
(this file is also a script). Every directory also gets an ``infer_cfg.yml`` like upstream's.

>>> dirs = build_models(Path("/tmp/m"))  # doctest: +SKIP
>>> sorted(p.name for p in dirs.values())  # doctest: +SKIP
['legacy', 'legacy-nms', 'legacy-sf', 'pir', 'pir-nms', 'pir-sf']
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SIZE = 64  #: input height and width of the test models
NUM_CLASSES = 5
#: MACs of the test model at batch 1, SIZE x SIZE (conv 3->8 s2, dw 8, cls 8->5, linear 8->8, 8->4)
_N = (SIZE // 2) ** 2
EXPECTED_MACS = _N * (8 * 27 + 8 * 9 + 5 * 8 + 8 * 8 + 4 * 8)
#: stem conv (+bias), dw conv (no bias), batch norm (4 x 8), cls conv, fc, reg (+biases)
EXPECTED_PARAMS = (8 * 27 + 8) + 8 * 9 + 4 * 8 + (5 * 8 + 5) + (8 * 8 + 8) + (8 * 4 + 4)
VARIANTS = {
    "pir": ("pir", False),
    "pir-sf": ("pir", True),
    "legacy": ("legacy", False),
    "legacy-sf": ("legacy", True),
    # real post-processing: box decoding + multiclass_nms3, like upstream's `inference` tarballs
    "pir-nms": ("pir", True),
    "legacy-nms": ("legacy", True),
    # for benchmarks: a PicoDet-sized backbone (16 depthwise-separable blocks, 96 channels,
    # 320x320), exported with scale_factor like upstream
    "legacy-big": ("legacy", True),
    # stand-ins for upstream's PicoDet-S-416 tarballs (same backbone as -big, 416x416), used by
    # tests/support/demo_mirror.py: without post-processing (image only) and with scale_factor
    "legacy-demo416-nopp": ("legacy", False),
    "legacy-demo416": ("legacy", True),
}
BIG_SIZE = 320
DEMO_SIZE = 416

INFER_CFG = """\
mode: paddle
draw_threshold: 0.5
metric: COCO
use_dynamic_shape: false
arch: PicoDet
min_subgraph_size: 3
Preprocess:
- interp: 2
  keep_ratio: false
  target_size:
  - {size}
  - {size}
  type: Resize
- is_scale: true
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  type: NormalizeImage
- type: Permute
label_list: [a, b, c, d, e]
"""


def build_models(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build the named variants (default: all but ``*-big``) under ``root``.

    Returns ``{variant: model_dir}``; one child process per format.
    """
    names = (
        [n for n in VARIANTS if not n.endswith("-big") and "-demo" not in n]
        if names is None
        else names
    )
    out: dict[str, Path] = {}
    for fmt in ("pir", "legacy"):
        todo = [n for n in names if VARIANTS[n][0] == fmt]
        if not todo:
            continue
        _run_child(fmt, root, todo)
        out.update({n: root / n for n in todo})
    return out


def build_interp_model(root: Path) -> Path:
    """A PIR model with a float-array attribute (bilinear interpolate ``scale``)."""
    _run_child("pir", root, ["interp"])
    return root / "interp"


def mark_as_newer_paddle(model_dir: Path) -> Path:
    """Rewrite ``model.json`` so float-array attributes are tagged as doubles (``0.a_f64``).

    paddle2onnx 2.1.0 then stops with the very error it gives on models saved by
    paddlepaddle >= 3.3 ("the 0th elementwise MUST be ir::FloatAttribute"); this is an
    emulation of that failure for tests, not a model actually saved by paddlepaddle 3.3.
    """
    path = model_dir / "model.json"
    text = path.read_text()
    new = text.replace('{"#":"0.a_f32","D":', '{"#":"0.a_f64","D":')
    assert new != text, "model has no float attributes to retag"
    path.write_text(new)
    return model_dir


def _run_child(fmt: str, root: Path, names: list[str]) -> None:
    env = dict(os.environ)
    env["FLAGS_enable_pir_api"] = "0" if fmt == "legacy" else "1"
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [sys.executable, str(Path(__file__).resolve()), str(root), json.dumps(names)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building {names} failed:\n{proc.stderr[-3000:]}")


def _build_in_child(root: Path, names: list[str]) -> None:  # pragma: no cover - child process
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F
    from paddle.static import InputSpec

    class Head(nn.Layer):
        def __init__(self, scale_factor: bool) -> None:
            super().__init__()
            self.scale_factor = scale_factor
            self.stem = nn.Conv2D(3, 8, 3, stride=2, padding=1)
            self.dw = nn.Conv2D(8, 8, 3, padding=1, groups=8, bias_attr=False)
            self.bn = nn.BatchNorm2D(8)
            self.cls = nn.Conv2D(8, NUM_CLASSES, 1)
            self.fc = nn.Linear(8, 8)
            self.reg = nn.Linear(8, 4)

        def forward(self, image, scale_factor=None):  # type: ignore[no-untyped-def]
            x = F.relu(self.stem(image))
            x = F.hardswish(self.bn(self.dw(x)))
            scores = F.softmax(self.cls(x), axis=1).flatten(2)
            feat = x.flatten(2).transpose([0, 2, 1])
            boxes = self.reg(F.relu(self.fc(feat))) * 16.0 + 32.0
            if self.scale_factor:
                boxes = boxes / scale_factor.tile([1, 2]).unsqueeze(1)
            return scores, boxes

    def kaiming() -> paddle.ParamAttr:  # keeps activations O(1) through the deep stack
        return paddle.ParamAttr(initializer=nn.initializer.KaimingNormal())

    class Big(nn.Layer):
        def __init__(self, scale_factor: bool = True) -> None:
            super().__init__()
            self.scale_factor = scale_factor
            c = 96
            self.stem = nn.Conv2D(3, c, 3, stride=2, padding=1, weight_attr=kaiming())
            self.strides = [2 if i in (2, 6, 12) else 1 for i in range(16)]
            self.blocks = nn.LayerList(
                [
                    nn.Sequential(
                        nn.Conv2D(
                            c,
                            c,
                            3,
                            stride=st,
                            padding=1,
                            groups=c,
                            weight_attr=kaiming(),
                            bias_attr=False,
                        ),
                        nn.BatchNorm2D(c),
                        nn.ReLU(),
                        nn.Conv2D(c, c, 1, weight_attr=kaiming(), bias_attr=False),
                        nn.BatchNorm2D(c),
                    )
                    for st in self.strides
                ]
            )
            self.cls = nn.Conv2D(c, 80, 1, weight_attr=kaiming())
            self.reg = nn.Conv2D(c, 4, 1, weight_attr=kaiming())

        def forward(self, image, scale_factor=None):  # type: ignore[no-untyped-def]
            x = self.stem(image)
            for block in self.blocks:
                x = F.relu(block(x))
            scores = F.softmax(self.cls(x), axis=1).flatten(2)
            boxes = self.reg(x).flatten(2).transpose([0, 2, 1]) * 16.0 + 32.0
            if not self.scale_factor:
                return scores, boxes
            return scores, boxes / scale_factor.tile([1, 2]).unsqueeze(1)

    class Nms(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.cls = nn.Conv2D(3, NUM_CLASSES, 3, stride=4, padding=1)
            self.reg = nn.Conv2D(3, 4, 3, stride=4, padding=1)

        def forward(self, image, scale_factor):  # type: ignore[no-untyped-def]
            g = SIZE // 4
            scores = F.softmax(self.cls(image), axis=1).flatten(2)  # [B, C, N]
            dist = F.relu(self.reg(image)).flatten(2).transpose([0, 2, 1]) * 8.0  # [B, N, 4]
            ys, xs = paddle.meshgrid(
                paddle.arange(g, dtype="float32"), paddle.arange(g, dtype="float32")
            )
            centers = paddle.stack([xs.flatten(), ys.flatten()], -1) * 4.0 + 2.0
            boxes = paddle.concat([centers - dist[:, :, :2], centers + dist[:, :, 2:]], -1)
            boxes = boxes / scale_factor.tile([1, 2]).unsqueeze(1)
            return _multiclass_nms3(boxes, scores)

    def _multiclass_nms3(boxes, scores):  # type: ignore[no-untyped-def]
        """PaddleDetection's ppdet.modeling.ops.multiclass_nms, both IRs."""
        attrs = {
            "background_label": -1,
            "nms_threshold": 0.5,
            "nms_top_k": 100,
            "keep_top_k": 20,
            "score_threshold": 0.25,
            "nms_eta": 1.0,
            "normalized": True,
        }
        if paddle.framework.in_pir_mode() or paddle.in_dynamic_mode():
            out, _, num = paddle._C_ops.multiclass_nms3(
                boxes, scores, None, 0.25, 100, 20, 0.5, True, 1.0, -1
            )
            return out, num
        from paddle.base.layer_helper import LayerHelper

        helper = LayerHelper("multiclass_nms3")
        out = helper.create_variable_for_type_inference(dtype=boxes.dtype)
        index = helper.create_variable_for_type_inference(dtype="int32")
        num = helper.create_variable_for_type_inference(dtype="int32")
        helper.append_op(
            type="multiclass_nms3",
            inputs={"BBoxes": boxes, "Scores": scores},
            outputs={"Out": out, "Index": index, "NmsRoisNum": num},
            attrs=attrs,
        )
        return out, num

    class Interp(nn.Layer):
        def forward(self, image):  # type: ignore[no-untyped-def]
            return F.interpolate(image, scale_factor=2.0, mode="bilinear")

    paddle.seed(0)
    for name in names:
        image = InputSpec([-1, 3, SIZE, SIZE], "float32", "image")
        if name == "interp":
            layer: nn.Layer = Interp()
            spec = [image]
        elif name.endswith("-nms"):
            layer = Nms()
            spec = [image, InputSpec([-1, 2], "float32", "scale_factor")]
        elif name.endswith("-big"):
            layer = Big()
            big = InputSpec([-1, 3, BIG_SIZE, BIG_SIZE], "float32", "image")
            spec = [big, InputSpec([-1, 2], "float32", "scale_factor")]
        elif "-demo416" in name:
            sf = VARIANTS[name][1]
            layer = Big(scale_factor=sf)
            demo = InputSpec([-1, 3, DEMO_SIZE, DEMO_SIZE], "float32", "image")
            spec = [demo, InputSpec([-1, 2], "float32", "scale_factor")] if sf else [demo]
        else:
            sf = VARIANTS[name][1]
            layer = Head(sf)
            # non-trivial batch-norm statistics, so folding them is actually exercised
            layer.bn._mean.set_value(paddle.rand([8]) - 0.5)
            layer.bn._variance.set_value(paddle.rand([8]) + 0.5)
            spec = [image, InputSpec([-1, 2], "float32", "scale_factor")] if sf else [image]
        layer.eval()
        static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
        paddle.jit.save(static, str(root / name / "model"))
        (root / name / "model.pdiparams.info").unlink(missing_ok=True)
        size = BIG_SIZE if name.endswith("-big") else DEMO_SIZE if "-demo416" in name else SIZE
        (root / name / "infer_cfg.yml").write_text(INFER_CFG.format(size=size))


if __name__ == "__main__":  # pragma: no cover - child process
    _build_in_child(Path(sys.argv[1]), json.loads(sys.argv[2]))
