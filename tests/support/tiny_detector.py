"""A tiny PicoDet-shaped ONNX, written with onnx.helper in milliseconds: the fast tier's model
for the engine conversions (OpenVINO, MNN, NCNN).

Input ``image`` [1, 3, S, S]; a stride-8 stem then three stride-2 convs give the 4 levels
(strides 8, 16, 32, 64); each level has a 1x1 class head (sigmoid) and a 1x1 distance head
(``4 * 8`` bins). Outputs, as upstream's no-post-processing export: 4 score maps
``[1, N_s, C]`` then 4 distance-logit maps ``[1, N_s, 32]``. He-normal weights with scaled
heads make scores spread over [0, 1] and logits over several units (a near-constant model
would let any comparison pass); :func:`output_spread` measures that.

>>> path = build_tiny_detector(Path("/tmp/tiny.onnx"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLASSES = 3
BINS = 8
WIDTH = 8


def build_tiny_detector(path: Path, *, size: int = 64, seed: int = 0) -> Path:
    """Write the model to ``path`` (weights drawn from ``seed``); returns ``path``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    inits: list[Any] = []

    def conv(x: str, cin: int, cout: int, k: int, stride: int, name: str, scale: float) -> str:
        w = rng.standard_normal((cout, cin, k, k)).astype("float32")
        w *= scale * np.sqrt(2.0 / (cin * k * k))
        b = (rng.standard_normal(cout) * 0.1).astype("float32")
        inits.extend(
            [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
        )
        pad = k // 2
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}_w", f"{name}_b"],
                [name],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        return name

    def relu(x: str) -> str:
        nodes.append(helper.make_node("Relu", [x], [f"{x}_relu"]))
        return f"{x}_relu"

    def flat(x: str, channels: int, name: str) -> str:
        shape = numpy_helper.from_array(np.array([1, channels, -1], "int64"), f"{name}_shape")
        inits.append(shape)
        nodes.append(helper.make_node("Reshape", [x, f"{name}_shape"], [f"{name}_flat"]))
        nodes.append(helper.make_node("Transpose", [f"{name}_flat"], [name], perm=[0, 2, 1]))
        return name

    feats = [relu(conv("image", 3, WIDTH, 9, 8, "stem", 1.0))]
    for i in range(3):
        feats.append(relu(conv(feats[-1], WIDTH, WIDTH, 3, 2, f"down{i}", 1.0)))
    scores, dists = [], []
    for i, f in enumerate(feats):
        cls = conv(f, WIDTH, CLASSES, 1, 1, f"cls{i}", 3.0)
        nodes.append(helper.make_node("Sigmoid", [cls], [f"{cls}_sig"]))
        scores.append(flat(f"{cls}_sig", CLASSES, f"scores{i}"))
        dists.append(flat(conv(f, WIDTH, 4 * BINS, 1, 1, f"reg{i}", 4.0), 4 * BINS, f"dists{i}"))
    cells = [(-(-size // s)) ** 2 for s in (8, 16, 32, 64)]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, CLASSES])
        for n, c in zip(scores, cells, strict=True)
    ]
    outputs += [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, 4 * BINS])
        for n, c in zip(dists, cells, strict=True)
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_picodet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def output_spread(path: Path, seed: int = 0) -> dict[str, float]:
    """Standard deviation of the score maps and of the distance logits of ``path`` (any
    PicoDet-shaped ONNX) on a seeded N(0, 1) image, by ONNX Runtime."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(seed).standard_normal(inp.shape).astype("float32")
    outs = sess.run(None, {inp.name: x})
    half = len(outs) // 2
    return {
        "scores": float(np.concatenate([o.ravel() for o in outs[:half]]).std()),
        "dists": float(np.concatenate([o.ravel() for o in outs[half:]]).std()),
    }
