"""A PicoDet-like Paddle inference model quantized the way PaddleSlim writes one, for tests.

PaddleSlim's post-training quantization (``quant_post_static``) saves a legacy program
(``model.pdmodel``) in which every quantized activation goes through a ``quantize_linear`` ->
``dequantize_linear`` pair (per-tensor scale, ``quant_axis`` -1) and every quantized conv
weight is stored as int8 values read through ``dequantize_linear`` (per-channel scales,
``quant_axis`` 0), ``bit_length`` 8. This builder writes those ops with Paddle's own static API
(legacy program mode: ``FLAGS_enable_pir_api=0``) instead of installing PaddleSlim, whose
2.6.0 wheel pulls an ``opencv-python`` built for numpy 1. The model: image (1x3x64x64) ->
quantized conv 3x3 stride 2 (8 channels) -> ReLU -> quantized 1x1 convs to 5 class scores
(sigmoid, ``[1, N, 5]``) and 4 box distances (``[1, N, 4]``), like an upstream model exported
without post-processing. paddle2onnx 2.1.0 aborts on it ("Only support e4m3 or e5m2 now",
SIGABRT), as on upstream's ``picodet_s_416_coco_lcnet_quant`` tarballs; Paddle Inference runs it.

The builder runs in a child process (the flag must be set before paddle is imported); this
file is also that child's script.

>>> build_quantized(Path("/tmp/q"))  # doctest: +SKIP
PosixPath('/tmp/q/legacy-quant')
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SIZE = 64
LABELS = ["a", "b", "c", "d", "e"]


def build_quantized(root: Path, name: str = "legacy-quant") -> Path:
    """Build the quantized model into ``root / name`` (``model.pdmodel``, ``model.pdiparams``,
    ``infer_cfg.yml``); returns that folder."""
    out = Path(root) / name
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    cmd = [sys.executable, str(Path(__file__).resolve()), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the quantized model failed:\n{proc.stderr[-3000:]}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from support.infer_cfg import infer_cfg

    (out / "infer_cfg.yml").write_text(infer_cfg((SIZE, SIZE), LABELS))
    return out


def _build(out: Path) -> None:  # pragma: no cover - child process
    import numpy as np
    import paddle

    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    rng = np.random.default_rng(0)
    with paddle.static.program_guard(main, startup):
        block = main.global_block()
        image = paddle.static.data("image", [1, 3, SIZE, SIZE], "float32")

        def const(name: str, value: np.ndarray) -> Any:
            return paddle.static.create_parameter(
                list(value.shape),
                "float32",
                name=name,
                default_initializer=paddle.nn.initializer.Assign(value.astype("float32")),
            )

        def op(kind: str, inputs: dict[str, Any], shape: list[int], axis: int, name: str) -> Any:
            y = block.create_var(name=name, dtype="float32", shape=shape)
            attrs = {"bit_length": 8, "quant_axis": axis, "round_type": 0, "is_test": True,
                     "only_observer": False}  # fmt: skip
            block.append_op(type=kind, inputs=inputs, outputs={"Y": y}, attrs=attrs)
            return y

        def quant_act(x: Any, name: str, scale: float) -> Any:
            s = const(f"{name}.scale", np.array([scale]))
            z = const(f"{name}.zero_point", np.zeros(1))
            q = op("quantize_linear", {"X": x, "Scale": s, "ZeroPoint": z}, x.shape, -1,
                   f"{name}.quantized")  # fmt: skip
            return op("dequantize_linear", {"X": q, "Scale": s, "ZeroPoint": z}, x.shape, -1,
                      f"{name}.dequantized")  # fmt: skip

        def quant_conv(x: Any, name: str, cout: int, k: int, stride: int) -> Any:
            w = rng.standard_normal((cout, x.shape[1], k, k)) * (2.0 / (x.shape[1] * k * k)) ** 0.5
            scale = np.abs(w).reshape(cout, -1).max(axis=1) / 127.0
            w_int8 = np.round(w / scale[:, None, None, None])
            wq = const(f"{name}.w_0", w_int8)
            s = const(f"{name}.w_0.scale", scale)
            z = const(f"{name}.w_0.zero_point", np.zeros(cout))
            w_dq = op("dequantize_linear", {"X": wq, "Scale": s, "ZeroPoint": z}, list(w.shape),
                      0, f"{name}.w_0.dequantized")  # fmt: skip
            xq = quant_act(x, f"{name}.input", 4.0 / 127.0)
            return paddle.nn.functional.conv2d(xq, w_dq, stride=stride, padding=k // 2)

        x = paddle.nn.functional.relu(quant_conv(image, "stem", 8, 3, 2))
        n = (SIZE // 2) ** 2
        logits = quant_conv(x, "cls", len(LABELS), 1, 1)
        cls = block.create_var(name="cls.sigmoid", dtype="float32", shape=logits.shape)
        block.append_op(type="sigmoid", inputs={"X": logits}, outputs={"Out": cls})
        scores = paddle.transpose(paddle.reshape(cls, [1, len(LABELS), n]), [0, 2, 1])
        reg = paddle.nn.functional.relu(quant_conv(x, "reg", 4, 1, 1))
        boxes = paddle.transpose(paddle.reshape(reg, [1, 4, n]), [0, 2, 1])
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    out.mkdir(parents=True, exist_ok=True)
    paddle.static.save_inference_model(
        str(out / "model"), [image], [scores, boxes], exe, program=main
    )


if __name__ == "__main__":  # pragma: no cover - the child process
    _build(Path(sys.argv[1]))
