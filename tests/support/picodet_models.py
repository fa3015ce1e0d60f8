"""A small PicoDet-like detector in Paddle, exported with and without post-processing.

Same weights, two exports, like upstream's ``inference`` and ``inference-nopp`` tarballs:

* ``nopp``: input ``image``; outputs 4 sigmoid score maps ``[1, N_s, C]`` then 4 box
  distributions ``[1, N_s, 4 * (REG_MAX + 1)]`` for strides 8, 16, 32, 64;
* ``pp`` / ``pp-fast``: inputs ``image`` and ``scale_factor``; decodes in the graph (softmax
  expectation x stride around cell centres, divided by scale_factor) and ends in
  ``multiclass_nms3`` (upstream's evaluation settings / a high threshold) -> ``[K, 6]`` rows
  and the box count.

Weights are re-initialised (He-normal convs, scaled heads) so that scores spread over [0, 1]
and distance logits over several units: random-init models give near-constant outputs, which
would make any comparison pass. :func:`build_picodet` checks that spread on a real image.

>>> dirs = build_picodet(Path("/tmp/pd"), (320, 320))  # doctest: +SKIP
>>> sorted(dirs)  # doctest: +SKIP
['nopp', 'pp', 'pp-fast']
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

NUM_CLASSES = 5
REG_MAX = 7
LABELS = ["person", "cat", "cup", "rocket", "coffee"]
#: NMS settings of the post-processed exports: ``pp`` has upstream's evaluation settings
#: (configs/picodet/_base_/picodet_v2.yml), ``pp-fast`` a high threshold that keeps few boxes
NMS = {
    "pp": {"score_threshold": 0.025, "nms_top_k": 1000, "keep_top_k": 100, "nms_threshold": 0.6},
    "pp-fast": {"score_threshold": 0.7, "nms_top_k": 100, "keep_top_k": 20, "nms_threshold": 0.5},
}


def build_picodet(
    root: Path,
    size: tuple[int, int],
    seed: int = 0,
    classes: int = NUM_CLASSES,
    width: int = 32,
    cls_bias: float = -2.0,
) -> dict[str, Path]:
    """Export the variants at input ``size`` (H, W) into ``root/{nopp,pp,pp-fast}``.

    ``classes`` and ``width`` (channels of the neck) scale the model, e.g. 80 classes and
    width 192 for a PicoDet-S-sized head at 416x416 (benchmarks/); a lower ``cls_bias`` makes
    most class scores small, as a trained detector's are."""
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        str(root),
        json.dumps([*size, seed, classes, width, cls_bias]),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the PicoDet test model failed:\n{proc.stderr[-3000:]}")
    out = {}
    for name in ("nopp", *NMS):
        d = root / name
        from support.infer_cfg import infer_cfg

        nms = NMS.get(name, NMS["pp"])
        (d / "infer_cfg.yml").write_text(infer_cfg(size, _labels(classes), nms=nms))
        out[name] = d
    return out


def _labels(classes: int) -> list[str]:
    return LABELS if classes == NUM_CLASSES else [f"class{i}" for i in range(classes)]


def _build(  # pragma: no cover - child process
    root: Path, h: int, w: int, seed: int, classes: int, width: int, cls_bias: float
) -> None:
    import numpy as np
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F
    from paddle.static import InputSpec

    bins = REG_MAX + 1
    strides = (8, 16, 32, 64)

    def conv(cin: int, cout: int, stride: int) -> nn.Layer:
        return nn.Sequential(
            nn.Conv2D(cin, cout, 3, stride=stride, padding=1,
                      weight_attr=paddle.ParamAttr(initializer=nn.initializer.KaimingNormal())),
            nn.BatchNorm2D(cout),
            nn.ReLU(),
        )  # fmt: skip

    class Pico(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(conv(3, 16, 2), conv(16, 24, 2), conv(24, width, 2))
            self.down = nn.LayerList([conv(width, width, 2) for _ in strides[1:]])
            self.cls = nn.Conv2D(width, classes, 1)
            self.reg = nn.Conv2D(width, 4 * bins, 1)
            self.postprocess: str | None = None

        def forward(self, image, scale_factor=None):  # type: ignore[no-untyped-def]
            feats = [self.stem(image)]
            for d in self.down:
                feats.append(d(feats[-1]))
            scores = [F.sigmoid(self.cls(f)).flatten(2).transpose([0, 2, 1]) for f in feats]
            regs = [self.reg(f).flatten(2).transpose([0, 2, 1]) for f in feats]
            if not self.postprocess:
                return (*scores, *regs)
            proj = paddle.arange(bins, dtype="float32")
            boxes = []
            for stride, f, r in zip(strides, feats, regs):  # noqa: B905 (dy2static has no strict)
                gh, gw = f.shape[2], f.shape[3]
                ys, xs = paddle.meshgrid(
                    paddle.arange(gh, dtype="float32"), paddle.arange(gw, dtype="float32")
                )
                centres = (paddle.stack([xs.flatten(), ys.flatten()], -1) + 0.5) * stride
                p = F.softmax(r.reshape([-1, r.shape[1], 4, bins]), axis=-1)
                dist = (p * proj).sum(-1) * stride
                boxes.append(
                    paddle.concat([centres - dist[:, :, :2], centres + dist[:, :, 2:]], -1)
                )
            boxes_all = paddle.concat(boxes, axis=1)
            sy, sx = paddle.split(scale_factor, 2, axis=-1)
            boxes_all = boxes_all / paddle.concat([sx, sy, sx, sy], -1).reshape([-1, 1, 4])
            scores_all = paddle.concat(scores, axis=1).transpose([0, 2, 1])
            nms = NMS[self.postprocess]
            out, _, num = paddle._C_ops.multiclass_nms3(
                boxes_all, scores_all, None, nms["score_threshold"], nms["nms_top_k"],
                nms["keep_top_k"], nms["nms_threshold"], True, 1.0, -1,
            )  # fmt: skip
            return out, num

    paddle.seed(seed)
    np.random.seed(seed)
    model = Pico()
    for layer in model.sublayers():
        if isinstance(layer, nn.BatchNorm2D):  # neutral batch norm
            layer._mean.set_value(paddle.zeros_like(layer._mean))
            layer._variance.set_value(paddle.ones_like(layer._variance))
    # heads: logits spread over several units, so scores cover [0, 1] and distances vary
    model.cls.weight.set_value(model.cls.weight * 1.5)
    model.cls.bias.set_value(paddle.full_like(model.cls.bias, cls_bias))
    model.reg.weight.set_value(model.reg.weight * 4.0)
    model.eval()
    image = InputSpec([1, 3, h, w], "float32", "image")
    for name in ("nopp", *NMS):
        model.postprocess = name if name in NMS else None
        pp = model.postprocess is not None
        spec = [image, InputSpec([1, 2], "float32", "scale_factor")] if pp else [image]
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        paddle.jit.save(static, str(root / name / "model"))
        (root / name / "model.pdiparams.info").unlink(missing_ok=True)


if __name__ == "__main__":  # pragma: no cover - child process
    _build(Path(sys.argv[1]), *json.loads(sys.argv[2]))
