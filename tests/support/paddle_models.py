"""Builders of small Paddle inference models, in both on-disk formats, for convert tests.

Each model is a miniature PicoDet-like head: conv (stride 2) -> depthwise conv -> batch norm ->
a class branch (1x1 conv + softmax -> ``scores`` of shape [B, 5, N]) and a box branch (two
Linear layers -> ``boxes`` of shape [B, N, 4]). With ``scale_factor`` the model takes a second
input ``scale_factor`` [B, 2] and divides the boxes by it, like upstream's post-processing.
The ``*-nms`` variants end like upstream's exported-with-post-processing models: boxes decoded
around anchor points, then ``multiclass_nms3`` -> ``[K, 6]`` rows (label, score, x1, y1, x2, y2)
and the per-image box count. The ``*-demo416*`` variants are PicoDet-S-416 stand-ins of the
real size (:data:`PICO_BACKBONE` ...: params and FLOPs within 10% of upstream's claims).

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
    # for benchmarks/bench_convert.py: a deep plain backbone (16 depthwise-separable blocks,
    # 96 channels, 320x320), exported with scale_factor like upstream
    "legacy-big": ("legacy", True),
    # stand-ins for upstream's PicoDet-S-416 tarballs, as big as PicoDet-S-416 (params and FLOPs
    # within 10% of its claims, see PICO_*), used by tests/support/demo_mirror.py: without
    # post-processing (image only; scores + box distances) and with scale_factor (boxes decoded)
    "legacy-demo416-nopp": ("legacy", False),
    "legacy-demo416": ("legacy", True),
}
BIG_SIZE = 320
DEMO_SIZE = 416
#: The demo416 stand-ins are sized like upstream's PicoDet-S-416 claims (1.18 M params, 1.65
#: GFLOPs = 2 x MACs at 416x416): backbone widths (LCNet x0.75), neck width, blocks per level,
#: distance bins per box side. Measured by picozoo.modelinfo: see tests/core/test_core_headline.py.
PICO_BACKBONE = (16, 24, 48, 96, 192, 384)
PICO_NECK = 128
PICO_BLOCKS = 6
PICO_BINS = 8


def build_models(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build the named variants (default: all but ``*-big``) under ``root``.

    Returns ``{variant: model_dir}``; one child process per format, both at once.
    """
    names = (
        [n for n in VARIANTS if not n.endswith("-big") and "-demo" not in n]
        if names is None
        else names
    )
    children = []
    for fmt in ("pir", "legacy"):
        todo = [n for n in names if VARIANTS[n][0] == fmt]
        if todo:
            children.append((_start_child(fmt, root, todo), todo))
    out: dict[str, Path] = {}
    for proc, todo in children:
        _finish_child(proc, root, todo)
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
    _finish_child(_start_child(fmt, root, names), root, names)


def _start_child(fmt: str, root: Path, names: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["FLAGS_enable_pir_api"] = "0" if fmt == "legacy" else "1"
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [sys.executable, str(Path(__file__).resolve()), str(root), json.dumps(names)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish_child(proc: subprocess.Popen[str], root: Path, names: list[str]) -> None:
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"building {names} failed:\n{stderr[-3000:]}")
    from support.infer_cfg import infer_cfg

    for name in names:  # like upstream's exports, every model folder has its infer_cfg.yml
        size = BIG_SIZE if name.endswith("-big") else DEMO_SIZE if "-demo416" in name else SIZE
        coco = name.endswith("-big") or "-demo416" in name  # 80 classes, like upstream's COCO
        labels = [f"class{i}" for i in range(80)] if coco else list("abcde")[:NUM_CLASSES]
        (root / name / "infer_cfg.yml").write_text(infer_cfg((size, size), labels))


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

    def dsb(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
        """Depthwise-separable block (LCNet's): dw kxk + BN + hardswish, pw 1x1 + BN."""
        return nn.Sequential(
            nn.Conv2D(cin, cin, k, stride=stride, padding=k // 2, groups=cin,
                      weight_attr=kaiming(), bias_attr=False),
            nn.BatchNorm2D(cin),
            nn.Hardswish(),
            nn.Conv2D(cin, cout, 1, weight_attr=kaiming(), bias_attr=False),
            nn.BatchNorm2D(cout),
            nn.Hardswish(),
        )  # fmt: skip

    class Pico(nn.Layer):
        """PicoDet-S-sized stand-in (see PICO_*): an LCNet-x0.75-like backbone (C3/C4/C5 at
        strides 8/16/32), a top-down neck of 128 channels plus a stride-64 level, and per level
        6 depthwise-separable 5x5 blocks then one 1x1 conv to 80 class + 4x8 distance bins
        (GFL-style). 52^2 + 26^2 + 13^2 + 7^2 = 3598 anchor points at 416x416, as upstream.
        Without scale_factor it ends like upstream's no-post-processing export (8 outputs);
        with it, boxes are decoded around the anchor points to the original image."""

        def __init__(self, scale_factor: bool) -> None:
            super().__init__()
            self.scale_factor = scale_factor
            c0, c1, c2, c3, c4, c5 = PICO_BACKBONE
            n = PICO_NECK
            self.stem = nn.Sequential(
                nn.Conv2D(3, c0, 3, stride=2, padding=1, weight_attr=kaiming(), bias_attr=False),
                nn.BatchNorm2D(c0),
                nn.Hardswish(),
            )
            self.c3 = nn.Sequential(dsb(c0, c1, 3), dsb(c1, c2, 3, 2), dsb(c2, c2, 3),
                                    dsb(c2, c3, 3, 2), dsb(c3, c3, 3))  # fmt: skip
            self.c4 = nn.Sequential(dsb(c3, c4, 3, 2), *[dsb(c4, c4, 5) for _ in range(5)])
            self.c5 = nn.Sequential(dsb(c4, c5, 5, 2), dsb(c5, c5, 5))
            self.lateral = nn.LayerList(
                [nn.Conv2D(c, n, 1, weight_attr=kaiming(), bias_attr=False) for c in (c3, c4, c5)]
            )
            self.extra = dsb(n, n, 5, 2)
            self.levels = nn.LayerList(
                [nn.Sequential(*[dsb(n, n, 5) for _ in range(PICO_BLOCKS)]) for _ in range(4)]
            )
            self.out = nn.LayerList(
                [nn.Conv2D(n, 80 + 4 * PICO_BINS, 1, weight_attr=kaiming()) for _ in range(4)]
            )

        def forward(self, image, scale_factor=None):  # type: ignore[no-untyped-def]
            x3 = self.c3(self.stem(image))
            x4 = self.c4(x3)
            x5 = self.c5(x4)
            p5 = self.lateral[2](x5)
            p4 = self.lateral[1](x4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
            p3 = self.lateral[0](x3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
            feats = [p3, p4, p5, self.extra(p5)]
            scores, boxes, logits = [], [], []
            bins = paddle.arange(PICO_BINS, dtype="float32").reshape([PICO_BINS, 1])
            for i, f in enumerate(feats):  # (no zip(strict=...): dy2static cannot convert it)
                y = self.out[i](self.levels[i](f)).flatten(2)  # [B, 80 + 32, N]
                # sigmoid via tanh: paddle 3.2's F.sigmoid fails in the legacy (old IR) mode
                scores.append((paddle.tanh(y[:, :80] * 0.5) + 1.0) * 0.5)
                logits.append(y[:, 80:].transpose([0, 2, 1]))  # [B, N, 4 * bins]
                dist = y[:, 80:].transpose([0, 2, 1]).reshape([0, -1, 4, PICO_BINS])
                # GFL's integral: expected distance over the bins (F.linear, like upstream's)
                dist = F.linear(F.softmax(dist, axis=-1), bins).flatten(2) * float(8 * 2**i)
                if self.scale_factor:  # decode around the anchor points, to the original image
                    g = f.shape[2]
                    ys, xs = paddle.meshgrid(
                        paddle.arange(g, dtype="float32"), paddle.arange(g, dtype="float32")
                    )
                    c = (paddle.stack([xs.flatten(), ys.flatten()], -1) + 0.5) * float(8 * 2**i)
                    dist = paddle.concat([c - dist[:, :, :2], c + dist[:, :, 2:]], -1)
                boxes.append(dist)
            if not self.scale_factor:  # upstream's no-post-processing export: 4 score maps
                # [B, N, 80] then 4 box distributions [B, N, 32], one per stride
                return (*[sc.transpose([0, 2, 1]) for sc in scores], *logits)
            scores_all = paddle.concat(scores, axis=2)  # [B, 80, 3598]
            boxes_all = paddle.concat(boxes, axis=1)  # [B, 3598, 4]
            if self.scale_factor:
                boxes_all = boxes_all / scale_factor.tile([1, 2]).unsqueeze(1)
            return scores_all, boxes_all

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
            layer = Pico(scale_factor=sf)
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


if __name__ == "__main__":  # pragma: no cover - child process
    _build_in_child(Path(sys.argv[1]), json.loads(sys.argv[2]))
